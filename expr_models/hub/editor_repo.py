"""One editor repo (as diffusers lays out a pipeline): saving, loading and pushing it.

An editor repo holds one subfolder per component, the face detector included, and a ``model_index.json`` that names
each folder's class::

    model_index.json        {"_class_name": "ExpressionEditor", "cyclegan": ["expr_models", "CycleGANModel"], ...}
    README.md, LICENSE.md   the editor's card and the weights' terms
    cyclegan/  sagan/  classifier/  segmenter/  style_features/   config.json + model.safetensors + card
                            (+ model.onnx: the network for onnxruntime, reading those weights; see
                            expr_models/models/onnx_forward.py)
    face_detector/          retinaface_mnet025.onnx + its card

``ExpressionEditor.save_pretrained(dir)`` writes it, ``ExpressionEditor.from_pretrained(dir | "user/repo")`` reads it
(Hub ids through ``snapshot_download``), and every ``push_to_hub`` uploads exactly the folder ``save_pretrained``
wrote (:mod:`.push`), to a private repo unless asked otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, HubUnavailableError, is_connection_error
from .push import push_folder

INDEX_FILE = "model_index.json"
DETECTOR_FOLDER = "face_detector"
DETECTOR_CLASS = "RetinaFaceDetector"
LIBRARY = "expr_models"
# A Hub repo id: "name" or "owner/name" (letters, digits, "-", "_", "."); anything else is a local path.
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")


# ---------------------------------------------------------------------------------------------------------------------
# The editor repo
# ---------------------------------------------------------------------------------------------------------------------

def _class_to_component() -> dict[str, str]:
    from ..components import COMPONENTS

    return {model_cls.__name__: name for name, (_, model_cls) in COMPONENTS.items()}


def detector_file(editor: Any) -> Path | None:
    """The RetinaFace ONNX file the editor uses (its models folder's copy, else the checkout's), if it exists."""
    from ..faces.detection.retinaface import DEFAULT_MODEL_PATH, MODEL_FILENAME

    candidates = [Path(editor.models_dir) / DETECTOR_FOLDER / MODEL_FILENAME] if editor.models_dir else []
    candidates.append(DEFAULT_MODEL_PATH)
    return next((path for path in candidates if path.is_file()), None)


def save_editor(editor: Any, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write ``editor``'s models as one editor repo (see the module docstring); returns the folder.

    Components given as local folders are copied byte for byte (fp16 weights stay fp16); Hub ids and model objects
    are saved with ``save_pretrained``.
    """
    from ..faces.detection.retinaface import MODEL_FILENAME

    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    for component, sources in editor.store.sources.items():
        for index, source in enumerate(sources):
            folder = out / (component if index == 0 else f"{component}-{index + 1}")
            if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
                if Path(source).resolve() != folder.resolve():
                    shutil.rmtree(folder, ignore_errors=True)
                    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__", ".*"))
            else:
                editor.model(component, index).save_pretrained(folder)
    onnx = detector_file(editor)
    if onnx is not None and onnx.resolve() != (out / DETECTOR_FOLDER / MODEL_FILENAME).resolve():
        (out / DETECTOR_FOLDER).mkdir(exist_ok=True)
        shutil.copy2(onnx, out / DETECTOR_FOLDER / MODEL_FILENAME)
        if (onnx.parent / "README.md").is_file():
            shutil.copy2(onnx.parent / "README.md", out / DETECTOR_FOLDER / "README.md")
    write_editor_card(out, repo_id=repo_id or str(save_directory))
    return out


def write_editor_card(folder: str | os.PathLike, repo_id: str | None = None) -> dict[str, Any]:
    """Write ``model_index.json``, ``README.md`` and ``LICENSE.md`` of an editor folder from its subfolders."""
    from ..components import COMPONENT_BY_MODEL_TYPE, COMPONENTS
    from ..faces.detection.retinaface import MODEL_FILENAME
    from .cards import editor_card, license_text

    folder = Path(folder)
    index: dict[str, Any] = {"_class_name": "ExpressionEditor", "_expr_models_version": _version()}
    classes: dict[str, str] = {}
    eval_results: list[dict[str, Any]] = []
    for config_file in sorted(folder.glob("*/config.json")):
        model_type = json.loads(config_file.read_text()).get("model_type")
        if model_type not in COMPONENT_BY_MODEL_TYPE:
            continue
        component = COMPONENT_BY_MODEL_TYPE[model_type]
        class_name = COMPONENTS[component][1].__name__
        index[config_file.parent.name] = [LIBRARY, class_name]
        classes[config_file.parent.name] = class_name
        info_file = config_file.parent / "model_card.json"
        if component in ("cyclegan", "sagan") and info_file.is_file():
            # The editor's model-index: the edits' success rates (each folder's card has the rest).
            eval_results += [r for r in json.loads(info_file.read_text()).get("eval_results", [])
                             if r.get("metric_type") == "accuracy"]
    if (folder / DETECTOR_FOLDER / MODEL_FILENAME).is_file():
        index[DETECTOR_FOLDER] = [LIBRARY, DETECTOR_CLASS]
        classes[DETECTOR_FOLDER] = DETECTOR_CLASS
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(editor_card(classes, eval_results, repo_id), encoding="utf-8")
    (folder / "LICENSE.md").write_text(license_text({}), encoding="utf-8")
    return index


def _version() -> str:
    """The installed expr-models version (pyproject.toml reads it from ``expr_models.__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("expr-models")
    except PackageNotFoundError:  # a source copy that was never installed, e.g. a Space
        return "unknown"


def read_index(folder: Path) -> tuple[dict[str, list[Path]], Path | None]:
    """The components (``{component: [folders]}``) and the detector file an editor folder's index names."""
    from ..faces.detection.retinaface import MODEL_FILENAME

    index_file = folder / INDEX_FILE
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{index_file} is not valid JSON ({error}).") from error
    by_class = _class_to_component()
    models: dict[str, list[Path]] = {}
    detector = None
    for name, entry in index.items():
        if name.startswith("_"):
            continue
        class_name = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        path = folder / name
        if class_name == DETECTOR_CLASS:
            detector = path / MODEL_FILENAME
            if not detector.is_file():
                raise CheckpointError(f"{index_file} names {name}/ but {detector} is missing.")
            continue
        if class_name not in by_class:
            raise CheckpointError(f"{index_file}: {name!r} has the unknown class {entry!r}; expected one of "
                                  f"{sorted(by_class) + [DETECTOR_CLASS]}.")
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{index_file} names {name}/ but {path / 'config.json'} is missing.")
        models.setdefault(by_class[class_name], []).append(path)
    return models, detector


def resolve_editor_source(source: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder for ``source``: itself when it is one (or is not a Hub id), else its Hub snapshot."""
    if isinstance(source, os.PathLike) or Path(source).exists() or not _REPO_ID.match(str(source)):
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), revision=revision))
    except Exception as error:  # noqa: BLE001 - one clear error for every way a download fails
        first_line = (str(error).strip().splitlines() or [""])[0]
        why = ("the Hugging Face Hub cannot be reached (offline?) and it is not in the local cache"
               if is_connection_error(error) else "the Hub has no such repo, or it is private and no token was given")
        raise HubUnavailableError(
            f"Could not load the editor {source!r}: it is not a local folder, and {why} "
            f"({type(error).__name__}: {first_line}). Use a local folder such as checkpoints when offline."
        ) from error


def load_editor(cls: type, source: Any = "checkpoints", device: Any = "cpu", revision: str | None = None,
                **kwargs) -> Any:
    """``ExpressionEditor.from_pretrained``: a ``{component: folder | Hub id | model}`` dict, a local editor folder
    (with ``model_index.json``, or just ``<name>/config.json`` subfolders) or an editor repo id on the Hub."""
    if isinstance(source, dict):
        return cls(models_dir=None, device=device, models=source, **kwargs)
    folder = resolve_editor_source(source, revision)
    if (folder / INDEX_FILE).is_file():
        models, _ = read_index(folder)  # the detector is found as <folder>/face_detector/, where the index put it
        kwargs["models"] = {**models, **kwargs.get("models", {})}
    return cls(models_dir=folder, device=device, **kwargs)


def push_editor(editor: Any, repo_id: str, *, private: bool = True, commit_message: str | None = None,
                token: str | None = None) -> str:
    """``editor.save_pretrained`` into a fresh folder, then push exactly that folder."""
    with tempfile.TemporaryDirectory(prefix="expr-push-") as folder:
        save_editor(editor, folder, repo_id=repo_id)
        return push_folder(folder, repo_id, private=private, commit_message=commit_message, token=token)
