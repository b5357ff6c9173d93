"""``expr-models space-export``: the folder it writes must be one the Hub accepts as a Gradio Space.

The rules checked here are the Hub's, written down from its documentation (Spaces configuration reference, and the
git push checks): they are checked locally, against no server.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SPACE_SDKS = {"gradio", "docker", "static", "streamlit"}
MAX_SHORT_DESCRIPTION = 60
MAX_REGULAR_FILE = 10 * 2**20  # the Hub refuses larger files outside LFS/Xet
MAX_SPACE_SIZE = 1 * 2**30
BINARY_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".pth", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".zip")


def front_matter(card: str) -> dict:
    assert card.startswith("---\n"), "a Space README starts with its YAML front matter"
    return yaml.safe_load(card.split("---", 2)[1])


def check_space_front_matter(meta: dict, root: Path | None = None) -> None:
    assert meta["sdk"] in SPACE_SDKS
    assert isinstance(meta["title"], str) and meta["title"]
    assert len(meta["short_description"]) <= MAX_SHORT_DESCRIPTION, meta["short_description"]
    assert meta["colorFrom"] in SPACE_COLORS and meta["colorTo"] in SPACE_COLORS
    assert len(meta["emoji"]) == 1
    assert isinstance(meta["sdk_version"], str) and meta["sdk_version"][0].isdigit()
    assert isinstance(meta["python_version"], str)
    assert isinstance(meta.get("pinned", False), bool)
    # Weights trained on research-only data: not apache-2.0; "other" needs a name and a link.
    assert meta["license"] == "other" and meta["license_name"] and meta["license_link"]
    for key in ("models", "datasets"):
        assert all(isinstance(item, str) and item.count("/") == 1 for item in meta.get(key) or [])
    if root is not None:
        assert (root / meta["app_file"]).is_file()
        assert (root / meta["license_link"]).is_file()


def lfs_patterns(gitattributes: str) -> list[str]:
    patterns = []
    for line in gitattributes.splitlines():
        parts = line.split()
        if parts and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def stored_with_lfs(path: str, patterns: list[str]) -> bool:
    # gitattributes: a pattern without "/" matches the file name at any depth.
    return any(fnmatch.fnmatch(path if "/" in p else path.rsplit("/", 1)[-1], p) for p in patterns)


def is_binary(path: Path) -> bool:
    return path.suffix.lower() in BINARY_SUFFIXES or b"\0" in path.read_bytes()[:8000]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    out = tmp_path_factory.mktemp("space") / "expr-space"
    done = subprocess.run([sys.executable, "-m", "expr_models", "space-export", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_space_front_matter_follows_the_hub_rules(space):
    check_space_front_matter(front_matter((space / "README.md").read_text()), space)


def test_no_binary_file_outside_lfs_and_sizes(space):
    patterns = lfs_patterns((space / ".gitattributes").read_text())
    files = [path for path in space.rglob("*") if path.is_file() and ".git" not in path.relative_to(space).parts]
    total = 0
    for path in files:
        relative = path.relative_to(space).as_posix()
        lfs = stored_with_lfs(relative, patterns)
        if is_binary(path):
            assert lfs, f"{relative} is binary but no .gitattributes pattern stores it with LFS"
        if not lfs:
            assert path.stat().st_size <= MAX_REGULAR_FILE, f"{relative} is over 10 MB outside LFS"
        total += path.stat().st_size
    assert total < MAX_SPACE_SIZE
    assert any(path.suffix == ".safetensors" for path in files) and any(path.suffix == ".onnx" for path in files)


def test_space_holds_exactly_what_the_app_needs(space):
    assert (space / "app.py").read_bytes() == (REPO_ROOT / "app.py").read_bytes()
    assert (space / "space" / "ui.py").is_file() and (space / "expr_models" / "pipeline.py").is_file()
    assert (space / "checkpoints" / "model_index.json").is_file()
    assert not list(space.rglob("__pycache__")) and not (space / "tests").exists() and not (space / "train").exists()
    requirements = (space / "requirements.txt").read_text()
    assert "torch" in requirements and "gradio" not in requirements and "pytest" not in requirements
    # The app starts from the exported folder alone: its editor finds every method's model there.
    code = ("from space.actions import *; from expr_models.pipeline import ExpressionEditor; "
            "print(ExpressionEditor.from_pretrained('checkpoints').available_methods())")
    done = subprocess.run([sys.executable, "-c", code], cwd=space, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(space)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "['cyclegan', 'sagan', 'nst', 'average', 'mesh']" in done.stdout


def test_the_repo_readme_front_matter_is_valid_too():
    check_space_front_matter(front_matter((REPO_ROOT / "README.md").read_text()))


def test_the_repo_carries_the_space_lfs_rules_and_its_files_stay_real():
    """The repo is a Space too: its .gitattributes is the one space-export writes, so a git push sends every binary
    it ships with LFS. The rules only act where git-lfs is installed: in a checkout without it the committed weights
    and images are their own bytes (no LFS pointers), and git sees them unchanged."""
    from expr_models.hub.space_export import gitattributes

    assert (REPO_ROOT / ".gitattributes").read_text() == gitattributes()
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # git's index: "mode blob stage\tpath" per file.
    index = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    blobs = {entry.split("\t", 1)[1]: entry.split()[1] for entry in index.decode().split("\0") if entry}
    binaries = [name for name in blobs if is_binary(REPO_ROOT / name)]
    assert {Path(name).suffix for name in binaries} >= {".safetensors", ".onnx", ".jpg"}
    patterns = lfs_patterns(gitattributes())
    for name in binaries:
        assert stored_with_lfs(name, patterns), f"{name} is binary but no .gitattributes pattern stores it with LFS"
        assert not (REPO_ROOT / name).read_bytes().startswith(b"version https://git-lfs"), f"{name} is a pointer"
    lfs_filter = subprocess.run(["git", "config", "--get", "filter.lfs.clean"], cwd=REPO_ROOT, capture_output=True)
    if lfs_filter.returncode != 0:  # no git-lfs here: the attributes are inert, git hashes the files as they are
        hashed = subprocess.run(["git", "hash-object", "--", *binaries], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.split()
        assert hashed == [blobs[name] for name in binaries]


def test_export_refuses_a_folder_that_is_not_empty(tmp_path):
    from expr_models.hub.space_export import export_space

    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export_space(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_the_committed_checkpoints_fit_the_30_mb_budget():
    """Every clone and every Space download carries them; the readers' int8 weights and NST's trimmed feature network
    brought them under it (37.6 MB before)."""
    folder = REPO_ROOT / "checkpoints"
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert total <= 30_000_000, f"checkpoints/ holds {total / 1e6:.1f} MB"
