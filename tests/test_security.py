"""Security: no pickles, no remote code, bounded uploads, no file read or written outside where it belongs, and no
research data in the repo.

Proven elsewhere: every family saves safetensors only (``README.md``, ``config.json``, ``model.safetensors``) and
``AutoModel.from_pretrained`` loads each one without ``trust_remote_code``
(tests/test_models.py::test_auto_round_trip_gives_identical_outputs); the CLI turns odd names into safe stems
(tests/test_cli.py::test_safe_stem) and writes nothing outside ``--out`` for a mixed folder
(tests/test_cli.py::test_mixed_folder); the Space escapes the HTML in its error messages and shows a generic
message for unexpected errors (tests/test_space.py).

Not covered by the code scan below: ``--resume`` in training goes through accelerate's ``load_state``, which
unpickles the RNG states it saved itself (``random_states_*.pkl``); only resume from your own runs.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def tracked_files() -> list[Path]:
    """The files git tracks (the index: committed or staged), or every file when this is not a git checkout."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "prepared", "runs", "__pycache__", ".pytest_cache"}
        return [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]
    return [REPO / name for name in listing.stdout.decode().split("\0") if name and (REPO / name).is_file()]


# ---------------------------------------------------------------------------------------------------------------------
# Pickles and remote code


UNSAFE_CALLS = {  # (module, function) -> why
    ("pickle", "load"): "unpickles", ("pickle", "loads"): "unpickles", ("cPickle", "load"): "unpickles",
    ("dill", "load"): "unpickles", ("joblib", "load"): "unpickles", ("pd", "read_pickle"): "unpickles",
    ("pandas", "read_pickle"): "unpickles",
}


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each call that can run pickled code or remote code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        func = node.func
        name = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            else None
        if name in UNSAFE_CALLS:
            found.append((node.lineno, f"{'.'.join(name)}()"))
        if name == ("torch", "load"):
            weights_only = keywords.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append((node.lineno, "torch.load() without weights_only=True"))
        if name and name[1] == "load" and name[0] in ("np", "numpy"):
            allow = keywords.get("allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                found.append((node.lineno, "numpy.load(allow_pickle=True)"))
        remote = keywords.get("trust_remote_code")
        if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
            found.append((node.lineno, "trust_remote_code"))
    return found


def test_the_scan_finds_what_it_looks_for():
    source = ("import torch, pickle\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
              "torch.load(f, weights_only=True)\npickle.loads(b)\n"
              "AutoModel.from_pretrained(p, trust_remote_code=True)\n"
              "np.load(f, allow_pickle=True)\n")
    assert [line for line, _ in unsafe_calls(source)] == [2, 3, 5, 6, 7]


def test_no_code_in_the_repo_loads_pickles_or_remote_code():
    problems = []
    for path in tracked_files():
        if path.suffix == ".py":
            problems += [f"{path.relative_to(REPO)}:{line}: {what}" for line, what in unsafe_calls(path.read_text())]
    assert not problems, "\n".join(problems)


def test_the_repo_holds_no_pickled_weights_and_no_remote_code_configs():
    pickled = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz"}
    assert not [p.relative_to(REPO) for p in tracked_files() if p.suffix.lower() in pickled]
    for config in REPO.glob("checkpoints/*/config.json"):
        settings = json.loads(config.read_text())
        assert "auto_map" not in settings, f"{config} asks for remote code"  # auto_map names code to download
        assert settings.get("model_type", "").startswith("expr-")


def test_saved_configs_name_no_remote_code(tmp_path):
    import expr_models as em

    configs = [em.CycleGANConfig(), em.SAGANConfig(), em.ExpressionClassifierConfig(),
               em.StyleFeatureConfig(architecture="mobilenet_v2"),
               em.FaceSegmenterConfig(backbone="mobilenet_v3_small")]
    for config in configs:
        folder = tmp_path / config.model_type
        config.save_pretrained(folder)
        assert "auto_map" not in json.loads((folder / "config.json").read_text())


# ---------------------------------------------------------------------------------------------------------------------
# The Space: upload size, and only uploaded files are read


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    from space.ui import build_demo, serve
    from test_space import free_port, make_tiny_checkpoints

    demo = build_demo(models_dir=make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints")))
    serve(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def upload(demo, name: str, content: bytes):
    import httpx

    return httpx.post(f"{demo.local_url}gradio_api/upload", files={"files": (name, content, "image/png")}, timeout=60)


def test_uploads_are_limited_to_the_configured_size(space, tmp_path):
    from gradio_client import handle_file

    from space.ui import MAX_FILE_SIZE

    demo, client = space
    assert MAX_FILE_SIZE == os.environ.get("EXPR_SPACE_MAX_FILE_SIZE", "20mb")
    limit = demo.max_file_size  # what serve() gave launch(), in bytes
    assert limit == 20 * 1024 * 1024 or "EXPR_SPACE_MAX_FILE_SIZE" in os.environ
    # Enforced by the server, whatever the client: a raw upload one byte over the limit is refused.
    response = upload(demo, "big.png", b"\0" * (limit + 1))
    assert response.status_code == 413, response.text[:300]
    assert upload(demo, "small.png", b"\0" * 1000).status_code == 200
    # gradio_client refuses before sending.
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (limit + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(big), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    assert client.predict(api_name="/methods")["methods"]["cyclegan"]["available"]


def test_the_space_reads_only_uploaded_files(space, photo, tmp_path):
    """An API call may name a server path instead of uploading (``{"path": ...}`` without Gradio's file marker).
    Gradio passes such a path through unchecked; the Space must refuse it, or anyone could read (and, with
    intensity 0, download) any image on the server, research data included."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    demo, client = space
    secret = tmp_path / "private.png"
    secret.write_bytes(photo.read_bytes())
    uploaded = client.predict(handle_file(photo), api_name="/detect")[0]  # some file inside Gradio's cache
    cache = Path(demo.GRADIO_CACHE)
    sneaky = [str(secret), "/etc/hostname", f"{cache}/../{secret.relative_to('/')}",
              str(cache / ".." / ".." / secret.relative_to("/"))]
    for path in sneaky:
        payload = {"path": path, "orig_name": "photo.png"}
        for args, api in (((payload, "cyclegan", "happy", 0.0, None, 20), "/edit"), ((payload,), "/detect"),
                          ((payload,), "/classify"),
                          ((handle_file(photo), "cyclegan", "happy", 0.0, payload, 20), "/edit")):  # the reference
            with pytest.raises(AppError, match="must be a file uploaded to this Space"):
                client.predict(*args, api_name=api)
    # Gradio's own fetch of URLs keeps to public addresses: no requests to the server's neighbours.
    with pytest.raises(AppError):
        client.predict({"path": "http://127.0.0.1:9/photo.png", "url": "http://127.0.0.1:9/photo.png",
                        "meta": {"_type": "gradio.FileData"}}, api_name="/detect")
    # Real uploads and cached files still work.
    assert Path(uploaded).is_file()
    *_, details = client.predict(handle_file(photo), "cyclegan", "happy", 0.5, None, 20, api_name="/edit")
    assert details["faces"]


def test_uploaded_names_cannot_escape_the_cache(space, photo):
    demo, client = space
    cache = Path(demo.GRADIO_CACHE).resolve()
    for name in ("../../evil.png", "/etc/evil.png", "..\\..\\evil.png", "a\nb.png", "<img src=x onerror=alert(1)>.png"):
        response = upload(demo, name, photo.read_bytes())
        assert response.status_code == 200, (name, response.text[:300])
        stored = Path(response.json()[0]).resolve()
        assert stored.is_relative_to(cache) and stored.parent.parent == cache, (name, stored)
        assert "\n" not in stored.name and "/" not in stored.name and "<" not in stored.name
        data = {"path": str(stored), "orig_name": name, "meta": {"_type": "gradio.FileData"}}
        *_, details = client.predict(data, "cyclegan", "happy", 0.5, None, 20, api_name="/edit")
        assert details["faces"]
    assert not Path("/etc/evil.png").exists()


# ---------------------------------------------------------------------------------------------------------------------
# The CLI: outputs stay in --out, whatever the input names


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from test_space import make_tiny_checkpoints

    return make_tiny_checkpoints(tmp_path_factory.mktemp("cli_checkpoints"))


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def test_cli_writes_only_inside_out_whatever_the_input_names(tmp_path, photo, tiny_checkpoints, monkeypatch, capsys):
    from expr_models.cli import main

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (tmp_path / "evil.png").write_bytes(photo.read_bytes())
    (work / "new\nline.png").write_bytes(photo.read_bytes())
    (work / "link.png").symlink_to(tmp_path / "evil.png")
    monkeypatch.chdir(work)
    before = files_under(tmp_path)
    inputs = ["../../evil.png", str(tmp_path / "evil.png"), "new\nline.png", "link.png", "nul\0byte.png"]
    code = main(["edit", *inputs, "--models", str(tiny_checkpoints), "--out", "out", "--json"])
    captured = capsys.readouterr()
    records = json.loads(captured.out)["files"]
    assert code == 1  # the NUL name is reported, not a crash
    errors = [record for record in records if record["error"]]
    assert len(errors) == 1 and "byte.png: no such file or folder" in captured.err.replace("\0", "")
    out = (work / "out").resolve()
    assert sorted(Path(r["output"]).name for r in records if r["output"]) == \
        ["evil-2.png", "evil.png", "link.png", "new_line.png"]
    assert files_under(tmp_path) - before == files_under(out)  # nothing written anywhere else
    assert (tmp_path / "evil.png").read_bytes() == photo.read_bytes()  # the link's target is untouched


def test_cli_does_not_follow_links_planted_in_out(tmp_path, photo, tiny_checkpoints, capsys):
    from expr_models.cli import main

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(victim)  # an existing link where the output would go
    (out / "b.png").symlink_to(tmp_path / "nowhere" / "b.png")  # a dangling one
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(photo.read_bytes())
    code = main(["edit", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--models", str(tiny_checkpoints),
                 "--out", str(out), "--json"])
    records = json.loads(capsys.readouterr().out)["files"]
    assert code == 1 and all("Refusing to write outside" in record["error"] for record in records)
    assert victim.read_text() == "precious" and not (tmp_path / "nowhere").exists()


def test_cli_refuses_a_file_as_out(tmp_path, photo, tiny_checkpoints, capsys):
    from expr_models.cli import main

    (tmp_path / "a.png").write_bytes(photo.read_bytes())
    (tmp_path / "out").write_text("not a folder")
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(tiny_checkpoints), "--out", str(tmp_path / "out")])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "not a folder"


# ---------------------------------------------------------------------------------------------------------------------
# No research data in the repo


def test_no_file_from_shared_data_is_committed():
    """Fails if any tracked file is byte-identical to a file under ../shared/data (research-only terms).

    Only sizes are read for the shared files (38k of them); a shared file is hashed only when a tracked file has its
    size, and each hash once. Empty files are skipped: they hold no data.
    """
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    by_size: dict[int, list[Path]] = {}
    for root, _, names in os.walk(SHARED_DATA):
        for name in names:
            path = Path(root, name)
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size:
                by_size.setdefault(size, []).append(path)

    shared_hashes: dict[int, dict[str, Path]] = {}  # size -> sha1 -> a shared file

    def sha1(path: Path) -> str:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    committed = []
    for path in tracked_files():
        size = path.stat().st_size
        if size not in by_size:
            continue
        if size not in shared_hashes:
            shared_hashes[size] = {sha1(shared): shared for shared in by_size[size]}
        match = shared_hashes[size].get(sha1(path))
        if match:
            committed.append(f"{path.relative_to(REPO)} is {match}")
    assert not committed, "research data is committed:\n" + "\n".join(committed)
