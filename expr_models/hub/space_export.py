"""``expr-models space-export DIR``: assemble exactly what the Gradio Space needs, in a folder the Hub accepts.

    expr-models space-export build/space               # then: cd build/space && git init && git lfs install ...
    expr-models space-export build/space --models me/expr-models

The folder holds ``README.md`` (the Space's front matter, built with ``SpaceCardData``), ``app.py``, ``space/``, the
``expr_models`` package source (it is not on PyPI), ``checkpoints/`` (an editor repo, see
``expr_models.hub.editor_repo``), a ``requirements.txt`` and a ``.gitattributes`` that stores every binary file with LFS
(the Hub refuses a git push with ``.safetensors``, ``.onnx`` or image files outside LFS/Xet). Nothing from
``../shared/data`` is copied.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from huggingface_hub import SpaceCard, SpaceCardData

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # expr_models/
REPO_ROOT = PACKAGE_DIR.parent
SHORT_DESCRIPTION = "Change facial expressions in photos: CycleGAN, SA-GAN, NST"  # the Hub allows 60 characters
# Stored with LFS: the Hub's default .gitattributes patterns for model files, plus ONNX, images and archives.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
    "*.xz", "*.zip", "*.zst", "*tfevents*",
    "*.jpg", "*.jpeg", "*.png", "*.gif", "*.webp", "*.bmp", "*.tif", "*.tiff", "*.ico", "*.pdf",
)
# The project's requirements the Space does not need: the Space SDK installs gradio itself, and tests, training logs
# and the ONNX export (onnx, onnxscript; onnxruntime runs the graphs) do not run there.
SPACE_SKIPS_REQUIREMENTS = ("gradio", "pytest", "tensorboard", "onnx", "onnxscript")


def _gradio_version() -> str:
    """The Space's ``sdk_version``: the gradio this code is tested with (the installed one)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError:
        return "6.31.0"


def space_card(models: list[str] | None = None) -> str:
    """The Space's README.md: front matter (https://huggingface.co/docs/hub/spaces-config-reference) and text."""
    data = SpaceCardData(
        title="Expression Editor", emoji="🙂", colorFrom="indigo", colorTo="pink", sdk="gradio",
        sdk_version=_gradio_version(), python_version="3.11", app_file="app.py", pinned=False,
        short_description=SHORT_DESCRIPTION, license="other", license_name="research-only-data",
        license_link="LICENSE.md", models=models or [], tags=["expression-editing", "cyclegan", "gan", "faces"],
    )
    text = "\n".join([
        "# Expression Editor", "",
        "Change the expression of every face in a photo with CycleGAN (neutral <-> happy), a class-conditional "
        "SA-GAN (seven expressions) or neural style transfer from a reference face; each edit is pasted back into "
        "the photo and every pixel outside the faces stays as it was.", "",
        "The models are in `checkpoints/` (an expr-models editor repo: `ExpressionEditor.from_pretrained`); the "
        "code is the `expr_models` package and `space/`.", "",
        "**Terms.** The weights were trained on research-only face data (JAFFE, FEI, FER2013, CK+, WIDER FACE); "
        "see `LICENSE.md` and each model's card. The code is Apache-2.0.", "",
    ])
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{text}"))


def gitattributes() -> str:
    return "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS)


def space_requirements(requirements: Path = REPO_ROOT / "requirements.txt") -> str:
    keep = []
    for line in requirements.read_text().splitlines():
        name = re.split(r"[<>=!~ ;\[]", line.strip(), maxsplit=1)[0].lower()
        if line.strip().startswith("-") or (name and name in SPACE_SKIPS_REQUIREMENTS):
            continue  # "-e ." and the like point at this checkout, which the Space does not have
        keep.append(line)
    return "\n".join(keep).strip() + "\n"


def export_space(out: str | Path, models: Any = None, force: bool = False) -> Path:
    """Write the Space folder to ``out`` (which must be empty or absent unless ``force``); returns it.

    ``models``: what goes into ``checkpoints/``: an editor folder or repo id (default: this checkout's
    ``checkpoints``), or an ``ExpressionEditor``.
    """
    from ..pipeline import ExpressionEditor
    from .editor_repo import save_editor

    if not (REPO_ROOT / "app.py").is_file() or not (REPO_ROOT / "space").is_dir():
        raise FileNotFoundError(f"The Space's app (app.py, space/) is not next to {PACKAGE_DIR}: run "
                                "space-export from a checkout of the expr-models source.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty; pass force=True (--force) to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copy2(REPO_ROOT / "app.py", out / "app.py")
    shutil.copytree(REPO_ROOT / "space", out / "space", ignore=ignore)
    shutil.copytree(PACKAGE_DIR, out / "expr_models", ignore=ignore)
    editor = models if isinstance(models, ExpressionEditor) else ExpressionEditor.from_pretrained(
        models if models is not None else REPO_ROOT / "checkpoints")
    save_editor(editor, out / "checkpoints")
    shutil.copy2(out / "checkpoints" / "LICENSE.md", out / "LICENSE.md")
    (out / "requirements.txt").write_text(space_requirements(), encoding="utf-8")
    (out / ".gitattributes").write_text(gitattributes(), encoding="utf-8")
    hub_models = [models] if isinstance(models, str) and not Path(models).exists() else []
    (out / "README.md").write_text(space_card(hub_models), encoding="utf-8")
    return out


def add_space_export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "space-export", help="write the folder of the Gradio Space (app, package, checkpoints, front matter)",
        description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, metavar="DIR", help="the folder to write (empty or absent)")
    parser.add_argument("--models", default=None,
                        help="editor folder or Hub repo id for checkpoints/ (default: this checkout's checkpoints)")
    parser.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    parser.set_defaults(func=run_space_export)


def run_space_export(args: Any) -> int:
    try:
        out = export_space(args.out, args.models, force=args.force)
    except (FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file()) / 2**20
    print(f"Wrote the Space to {out} ({size:.1f} MB). Push it with `hf upload USER/SPACE {out} --repo-type space` "
          "or git with git-lfs (the .gitattributes is there).")
    return 0
