"""Reliability: awkward inputs, broken checkpoints, faults and recoveries in the pipeline, the CLI, the Space and
training. Nothing may crash the process, hang it or lose work; every refusal says what is wrong.

Proven elsewhere and not repeated here:

- ``load_image`` on small CMYK, 16-bit, palette, RGBA, gray, animated and EXIF-rotated images, truncated and non-image
  bytes, a PNG header claiming 100 MP; unknown methods and expressions (tests/test_pipeline.py);
- truncated, garbage, missing and bad-JSON checkpoints, another model type, missing weights: ``CheckpointError``
  naming the file (tests/test_models.py);
- the CLI on a truncated JPEG, a non-image and a photo without a face (tests/test_cli.py); the Space on a non-image,
  a header-only bomb, no face and a missing checkpoint (tests/test_space.py);
- training: bad configurations fail at the start (an output path under a file, too little free disk among them);
  stop/resume and kill -9/resume end with the weights of an uninterrupted run; a stale ``.tmp-checkpoint_*`` is never
  picked and is removed on the next start (tests/test_training.py).

The same catalog of files (tests/bad_inputs.py) goes through the pipeline, the CLI and the running Space here.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from bad_inputs import Case, blank_png, catalog, face_grid, small_face, write_catalog
from expr_models.errors import CheckpointError, ExpressionEditError, ImageTooLargeError, NoFaceError
from expr_models.io import load_image
from expr_models.pipeline import ExpressionEditor
from test_pipeline import MouthBrightener, unchanged_outside_masks

REPO = Path(__file__).resolve().parents[1]
CATALOG = catalog()


@pytest.fixture(scope="module")
def fake_editor():
    return ExpressionEditor(models_dir=None, models={"cyclegan": MouthBrightener()})


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from test_space import make_tiny_checkpoints

    return make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def check_result(case: Case, result) -> None:
    assert result.image.size == result.original.size
    assert unchanged_outside_masks(result)
    if case.faces is not None:
        assert len(result.faces) == case.faces
    if case.note:
        assert any(case.note in note for note in result.notes), result.notes


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_pipeline_edits_or_clearly_refuses_each_awkward_file(fake_editor, tmp_path, name):
    case = CATALOG[name]
    path = tmp_path / name
    path.write_bytes(case.data)
    if case.error is None:
        check_result(case, fake_editor.edit(path, target="happy"))
    else:
        with pytest.raises(case.error, match=case.message) as raised:
            fake_editor.edit(path, target="happy")
        if case.error is not NoFaceError:
            assert name in str(raised.value)  # the message names the user's file


def test_real_decompression_bombs_are_refused_before_decoding(monkeypatch):
    small = load_image(blank_png(300, 200))  # the generator makes real PNGs: a small one decodes
    assert small.size == (300, 200) and small.getpixel((5, 5)) == (0, 0, 0)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for width, height in ((10_000, 10_000), (20_000, 20_000)):
        data = blank_png(width, height)
        assert len(data) < 100_000  # a few kB on disk, 100-400 MP decoded
        started = time.perf_counter()
        with pytest.raises(ImageTooLargeError):
            load_image(data)
        assert time.perf_counter() - started < 2


def test_every_one_of_twenty_faces_is_edited_when_uncapped():
    editor = ExpressionEditor(models_dir=None, models={"cyclegan": MouthBrightener(amount=1.0)}, max_faces=None)
    photo = face_grid(20)
    result = editor.edit(photo, target="happy")
    assert len(result.faces) == 20 and not result.notes
    assert unchanged_outside_masks(result)
    changed = (np.asarray(result.image) != photo).any(-1)
    for face in result.faces:  # each face itself changed, not only its neighbours' blends
        x0, y0, x1, y1 = (int(v) for v in (face.box.x0, face.box.y0, face.box.x1, face.box.y1))
        assert changed[y0:y1, x0:x1].sum() > 20


def test_small_faces_down_to_the_minimum_size_are_edited(fake_editor):
    result = fake_editor.edit(small_face(40), target="happy")
    assert len(result.faces) == 1 and 32 <= result.faces[0].box.width < 60
    assert unchanged_outside_masks(result)
    with pytest.raises(NoFaceError, match="at least 32 pixels"):
        fake_editor.edit(small_face(20), target="happy")


def test_the_editor_is_unharmed_by_bad_inputs(fake_editor):
    photo = np.asarray(load_image(CATALOG["gray.png"].data))
    before = np.asarray(fake_editor.edit(photo, target="happy").image)
    for case in CATALOG.values():
        try:
            fake_editor.edit(case.data, target="happy")
        except ExpressionEditError:
            pass
    np.testing.assert_array_equal(np.asarray(fake_editor.edit(photo, target="happy").image), before)


def test_broken_checkpoints_through_the_editor_and_recovery(tiny_checkpoints, tmp_path):
    import shutil

    photo = np.asarray(load_image(CATALOG["gray.png"].data))
    # Another model type where a CycleGAN is expected.
    wrong = ExpressionEditor(models_dir=None, models={"cyclegan": tiny_checkpoints / "sagan"})
    with pytest.raises(CheckpointError, match="expr-sagan"):
        wrong.edit(photo, target="happy")
    # The right config over another model's weights.
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_checkpoints / "cyclegan", mixed)
    shutil.copy(tiny_checkpoints / "sagan" / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(CheckpointError, match="lacks"):
        ExpressionEditor(models_dir=None, models={"cyclegan": mixed}).edit(photo, target="happy")

    # A truncated file: a clear error naming it; once the file is whole again the same editor works (a failed load
    # is not cached, so a long-running server needs no restart).
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoints / "cyclegan", broken)
    weights = broken / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    editor = ExpressionEditor(models_dir=None, models={"cyclegan": broken, "sagan": tiny_checkpoints / "sagan"})
    with pytest.raises(CheckpointError, match="model.safetensors"):
        editor.edit(photo, target="happy")
    assert editor.edit(photo, method="sagan", target="sad").faces  # the other method is unaffected
    weights.write_bytes(good)
    assert editor.edit(photo, target="happy").faces


# ---------------------------------------------------------------------------------------------------------------------
# The CLI


def test_cli_batch_of_awkward_files(tmp_path, tiny_checkpoints, capsys):
    from expr_models.cli import main

    folder = tmp_path / "in"
    cases = write_catalog(folder)
    out = tmp_path / "out"
    code = main(["edit", str(folder), "--models", str(tiny_checkpoints), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    records = {Path(record["input"]).name: record for record in summary["files"]}
    assert set(records) == set(cases) and code == 1
    for name, case in cases.items():
        record = records[name]
        if case.error is None:
            assert record["error"] is None, (name, record["error"])
            assert Path(record["output"]).parent == out.resolve()
            if case.note:
                assert any(case.note in note for note in record["notes"]), (name, record["notes"])
            if case.faces:
                assert len(record["faces"]) == case.faces
        else:
            assert record["output"] is None and record["error"].startswith(case.error.__name__), (name, record)
            assert case.message in record["error"] and name in captured.err
    assert len(list(out.iterdir())) == sum(case.error is None for case in cases.values())


def test_cli_goes_on_after_an_unexpected_error(tmp_path, tiny_checkpoints, monkeypatch, capsys):
    from expr_models.cli import main
    from expr_models.components import EDITING_METHODS

    method = EDITING_METHODS["cyclegan"]
    original = type(method).edit_face
    calls = []

    def fails_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated fault in a model")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(method), "edit_face", fails_once)
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(CATALOG["gray.png"].data)
    code = main(["edit", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--models", str(tiny_checkpoints),
                 "--out", str(tmp_path / "out"), "--json"])
    records = json.loads(capsys.readouterr().out)["files"]
    assert code == 1
    assert "internal error: RuntimeError: simulated fault" in records[0]["error"]
    assert records[1]["error"] is None and Path(records[1]["output"]).is_file()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "model.safetensors"),
    ("other_weights", "lacks"),
    ("bad_json", "No cyclegan checkpoint"),  # an unreadable config.json is skipped (with a warning), so none is found
])
def test_cli_broken_checkpoint_stops_before_any_photo(tmp_path, tiny_checkpoints, capsys, damage, message):
    import shutil

    from expr_models.cli import main

    models = tmp_path / "models"
    shutil.copytree(tiny_checkpoints / "cyclegan", models / "cyclegan")
    weights = models / "cyclegan" / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "other_weights":
        shutil.copy(tiny_checkpoints / "classifier" / "model.safetensors", weights)
    else:
        (models / "cyclegan" / "config.json").write_text('{"model_type": "expr-cyclegan",')
    (tmp_path / "a.png").write_bytes(CATALOG["gray.png"].data)
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / "out")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_unknown_method_is_a_usage_error(capsys):
    from expr_models.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["edit", "a.png", "--out", "o", "--method", "pix2pix"])
    assert exit_info.value.code == 2 and "invalid choice: 'pix2pix'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# The Space, running, through gradio_client


def launch_space(models_dir: Path):
    from gradio_client import Client

    from space.ui import build_demo, serve
    from test_space import free_port

    demo = build_demo(models_dir=models_dir)
    serve(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, Client(demo.local_url, verbose=False)


@pytest.fixture(scope="module")
def space(tiny_checkpoints):
    pytest.importorskip("gradio_client")
    demo, client = launch_space(tiny_checkpoints)
    try:
        yield client
    finally:
        demo.close()


def assert_still_answering(client) -> None:
    assert client.predict(api_name="/methods")["methods"]["cyclegan"]["available"]


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_space_edits_or_clearly_refuses_each_awkward_file(space, tmp_path, name):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    case = CATALOG[name]
    path = tmp_path / name
    path.write_bytes(case.data)
    if case.error is None:
        edited, _, _, before, _, details = space.predict(handle_file(path), "cyclegan", "happy", 1.0, None, 20,
                                                         api_name="/edit")
        with Image.open(edited) as image:
            assert image.size == tuple(details["size"])
        assert before is not None and details["faces"]
        if case.note:
            assert any(case.note in note for note in details["notes"]), details["notes"]
        if case.faces:
            assert len(details["faces"]) == case.faces
    else:
        with pytest.raises(AppError, match=case.message) as raised:
            space.predict(handle_file(path), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
        assert "went wrong on our side" not in str(raised.value)  # a clear message, not the generic one

    # Finding the faces reads the file the same way: the same refusal for unreadable files, no faces otherwise.
    if case.error is None or case.error is NoFaceError:
        view, info = space.predict(handle_file(path), api_name="/detect")
        assert os.path.isfile(view) and (info["faces"] == [] if case.error else info["faces"])
    else:
        with pytest.raises(AppError, match=case.message):
            space.predict(handle_file(path), api_name="/detect")
    assert_still_answering(space)


def test_space_refuses_bad_arguments_clearly(space):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    photo = handle_file(REPO / "space" / "examples" / "astronaut.jpg")
    for args, message in [
        (("pix2pix", "happy", 1.0), "not in the list of choices"),
        (("cyclegan", "ecstatic", 1.0), "Unknown expression"),
        (("cyclegan", "sad", 1.0), "can produce happy, neutral"),
        (("cyclegan", "happy", 1.5), "Intensity must be between 0 and 1 for CycleGAN"),  # the method's own limit
        (("mesh", "happy", 1.6), "greater than maximum"),  # past any method's
        (("cyclegan", "happy", -0.5), "less than minimum"),
    ]:
        with pytest.raises(AppError, match=message):
            space.predict(photo, *args, None, 20, api_name="/edit")
        assert_still_answering(space)


@pytest.mark.parametrize("fault", [RuntimeError("secret internal detail"), MemoryError("secret internal detail")])
def test_space_survives_unexpected_errors(space, monkeypatch, fault):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from space import ui

    original = ui.run_edit
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise fault
        return original(*args, **kwargs)

    monkeypatch.setattr(ui, "run_edit", fails_once)
    photo = handle_file(REPO / "space" / "examples" / "astronaut.jpg")
    with pytest.raises(AppError) as raised:
        space.predict(photo, "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    assert "went wrong on our side" in str(raised.value) and "secret" not in str(raised.value)
    *_, details = space.predict(photo, "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    assert details["faces"]


def test_space_with_broken_checkpoints_starts_and_explains(tiny_checkpoints, tmp_path):
    import shutil

    pytest.importorskip("gradio_client")
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    models = tmp_path / "models"
    shutil.copytree(tiny_checkpoints, models)
    truncated = models / "cyclegan" / "model.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:2000])
    shutil.copy(tiny_checkpoints / "classifier" / "model.safetensors", models / "sagan" / "model.safetensors")

    demo, client = launch_space(models)
    try:
        summary = client.predict(api_name="/methods")["methods"]
        assert not summary["cyclegan"]["available"] and "model.safetensors" in summary["cyclegan"]["problem"]
        assert not summary["sagan"]["available"] and "lacks" in summary["sagan"]["problem"]
        photo = handle_file(REPO / "space" / "examples" / "astronaut.jpg")
        for method, message in (("cyclegan", "model.safetensors"), ("sagan", "lacks")):
            with pytest.raises(AppError, match=message):
                client.predict(photo, method, "happy", 1.0, None, 20, api_name="/edit")
        reading = client.predict(photo, api_name="/classify")  # the healthy classifier still serves
        assert len(reading["confidences"]) == 7
    finally:
        demo.close()


# ---------------------------------------------------------------------------------------------------------------------
# Training faults


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    pytest.importorskip("datasets")
    pytest.importorskip("accelerate")
    from test_training import save_expression_dataset

    return save_expression_dataset(tmp_path_factory.mktemp("prepared") / "paper", ["neutral", "happy"], per_class=6)


def training_args(paper: Path, output: Path) -> list[str]:
    from test_training import QUIET, TINY_GAN

    # 3 steps per epoch; checkpoints at 2 and 4; the run ends at 6.
    return ["--data", str(paper), *TINY_GAN, *QUIET, "--batch-size", "2", "--max-steps", "6",
            "--checkpointing-steps", "2", "--sample-every", "0", "--seed", "3", "--output-dir", str(output)]


def run_training(argv: list[str], fault: str | None = None, max_file_bytes: int | None = None):
    from test_training import SUBPROCESS_ENV

    def limit_file_size():  # a full disk, without a mount: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    script = ["tests/train_fault_injection.py", fault] if fault else ["train/cyclegan.py"]
    return subprocess.run([sys.executable, *script, *argv], cwd=REPO, env=SUBPROCESS_ENV, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_file_size if max_file_bytes else None)


def test_unwritable_output_dirs_fail_at_start(paper, tmp_path, capsys):
    from test_training import train_in_process
    from train.cyclegan import CycleGANStep

    # Root may write almost anywhere, so use places that refuse even root: procfs and sysfs.
    for output, reason in ((Path("/proc/expr-models-run"), "No such file or directory"),
                           (Path("/sys/expr-models-run"), "Operation not permitted")):
        if output.parent.is_dir():
            assert train_in_process(CycleGANStep, training_args(paper, output)) == 2
            error = capsys.readouterr().err
            assert f"--output-dir {output}: cannot write there ({reason})" in error, error

    # A disk that takes no more than 1 kB per file: the 4 kB write probe fails at the start.
    run = run_training(training_args(paper, tmp_path / "run"), max_file_bytes=1024)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "cannot write there (File too large)" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_disk_full_during_a_save_leaves_no_checkpoint_that_looks_complete(paper, tmp_path):
    from train import checkpoints

    output = tmp_path / "run"
    run = run_training(training_args(paper, output), max_file_bytes=32 * 1024)  # the probe fits, weights do not
    assert run.returncode != 0
    assert "File too large" in run.stderr, run.stderr[-2000:]
    assert checkpoints.list_checkpoints(output / "checkpoints") == []  # only a .tmp folder, which the next start removes
    assert not (output / "final").exists()


def test_kills_during_saves_never_leave_an_unloadable_latest_checkpoint(paper, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel

    import expr_models  # noqa: F401  (registers the Auto classes)
    from train import checkpoints

    output = tmp_path / "run"
    argv = training_args(paper, output)

    # 1. Killed while writing the second checkpoint's weights: the first is the newest, and whole.
    killed = run_training(argv, fault="kill-mid-write:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = checkpoints.list_checkpoints(output / "checkpoints")
    assert [step for step, _ in saved] == [2]
    load_file(str(saved[-1][1] / "model.safetensors"))

    # 2. Resumed, then killed half-way through writing the final model: no half-written final/ to load by mistake.
    killed = run_training([*argv, "--resume"], fault="kill-in-final")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "Resumed from" in killed.stdout
    assert [step for step, _ in checkpoints.list_checkpoints(output / "checkpoints")] == [2, 4, 6]
    assert not (output / "final").exists()

    # 3. Resumed again: it picks up at the last step and writes a final model that loads.
    resumed = run_training([*argv, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "at step 6" in resumed.stdout
    model = AutoModel.from_pretrained(output / "final")
    assert type(model).__name__ == "CycleGANModel"
    assert not list(output.glob(".tmp-*")) and not list(output.glob(".old-*"))
    assert json.loads((output / "training_summary.json").read_text())["steps"] == 6
