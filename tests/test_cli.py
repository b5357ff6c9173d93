import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from expr_models.cli import build_parser, main, safe_stem
from expr_models.labels import EXPRESSIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny randomly initialised real checkpoints (the CLI only needs them to load and run)."""
    from expr_models import (CycleGANConfig, CycleGANModel, SAGANConfig, SAGANModel, StyleFeatureConfig,
                             StyleFeatureExtractor)

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    CycleGANModel(CycleGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                                 with_discriminators=False)).save_pretrained(root / "cyclegan")
    SAGANModel(SAGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                           with_discriminator=False)).save_pretrained(root / "sagan")
    StyleFeatureExtractor(StyleFeatureConfig(architecture="mobilenet_v2")).save_pretrained(root / "style_features")
    for component in ("face_mesh", "mesh_motion"):  # the committed mesh parts: the mesh method and its controls
        shutil.copytree(ROOT / "checkpoints" / component, root / component)
    return root


@pytest.fixture(scope="module")
def photos():
    from matplotlib import cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = Image.open(f).convert("RGB")
    return {"astronaut": Image.fromarray(data.astronaut()), "grace": grace, "coffee": Image.fromarray(data.coffee())}


@pytest.fixture()
def mixed_folder(tmp_path, photos):
    """Good photos (one in a subfolder, one with the same stem, one with an odd name) and bad files."""
    folder = tmp_path / "in"
    (folder / "more").mkdir(parents=True)
    photos["astronaut"].save(folder / "astronaut.png")
    photos["grace"].save(folder / "grace.jpg")
    photos["astronaut"].save(folder / "more" / "astronaut.jpg")  # same stem as ../astronaut.png
    photos["grace"].save(folder / "..evil name!.png")
    photos["coffee"].save(folder / "coffee.jpg")  # no face
    jpeg = (folder / "grace.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "notes.png").write_bytes(b"these are notes, not an image")
    (folder / "readme.txt").write_text("not an image extension: skipped")
    good = ["astronaut.png", "grace.jpg", "more/astronaut.jpg", "..evil name!.png"]
    bad = ["coffee.jpg", "truncated.jpg", "notes.png"]
    return folder, good, bad


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def test_parser_has_edit_subcommand():
    args = build_parser().parse_args(["edit", "a.jpg", "--out", "o", "--to", "sad", "--method", "sagan"])
    assert args.command == "edit" and args.target == "sad" and args.func.__name__ == "run_edit"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["edit", "a.jpg", "--out", "o", "--intensity", "1.6"])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_safe_stem():
    assert safe_stem(Path("../../etc/passwd")) == "passwd"
    assert safe_stem(Path("..evil name!.png")) == "evil_name"
    assert safe_stem(Path("...png")) == "image"
    assert safe_stem(Path("ünïcode ☺.jpg")) == "n_code"


def test_mixed_folder(tmp_path, mixed_folder, models, capsys):
    folder, good, bad = mixed_folder
    out = tmp_path / "out"
    before = files_under(tmp_path)
    code = main(["edit", str(folder), "--method", "cyclegan", "--to", "happy", "--models", str(models),
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 1

    summary = json.loads(captured.out)  # with --json, stdout is the JSON alone
    records = {Path(r["input"]).relative_to(folder).as_posix(): r for r in summary["files"]}
    assert set(records) == set(good) | set(bad)  # readme.txt is not an image and is skipped
    assert summary["failed"] == len(bad) and summary["succeeded"] == len(good)
    for name in good:
        record = records[name]
        assert record["error"] is None and len(record["faces"]) >= 1 and record["method"] == "cyclegan"
        assert len(record["faces"][0]["box"]) == 4 and record["seconds"] > 0
        output = Path(record["output"])
        assert output.parent == out.resolve()
        with Image.open(folder / name) as source, Image.open(output) as edited:
            assert edited.size == source.size
    for name in bad:
        assert records[name]["error"] and records[name]["output"] is None
        assert name.split("/")[-1] in captured.err
    assert "NoFaceError" in records["coffee.jpg"]["error"]
    assert "ImageLoadError" in records["truncated.jpg"]["error"]

    written = {p.name for p in files_under(out)}
    assert written == {"astronaut.png", "astronaut-2.png", "grace.png", "evil_name.png"}
    assert files_under(tmp_path) - before == files_under(out)  # nothing written outside --out


def test_all_good_exit_zero_and_human_output(tmp_path, photos, models, capsys):
    photos["astronaut"].save(tmp_path / "a.jpg")
    code = main(["edit", str(tmp_path / "a.jpg"), "--method", "sagan", "--to", "surprise", "--intensity", "0.5",
                 "--models", str(models), "--out", str(tmp_path / "out"), "--max-faces", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "1 face" in captured.out and captured.err.count("error") == 0
    assert (tmp_path / "out" / "a.png").is_file()


def test_json_reports_the_readings_and_plain_runs_read_only_what_steers_the_edit(tmp_path, photos, models, capsys,
                                                                                  monkeypatch):
    from expr_models.pipeline import ExpressionEditor

    with_classifier = tmp_path / "models"
    shutil.copytree(models, with_classifier)
    shutil.copytree(ROOT / "checkpoints" / "classifier", with_classifier / "classifier")
    photos["astronaut"].save(tmp_path / "a.jpg")
    calls = []
    read = ExpressionEditor.read_expressions
    monkeypatch.setattr(ExpressionEditor, "read_expressions",
                        lambda self, *args: calls.append(1) or read(self, *args))
    command = ["edit", str(tmp_path / "a.jpg"), "--to", "happy", "--models", str(with_classifier), "--max-faces", "1"]
    assert main(command + ["--out", str(tmp_path / "plain")]) == 0
    assert len(calls) == 0  # the CycleGAN's target alone sets its direction, and nothing would show a reading
    assert main(command + ["--out", str(tmp_path / "sagan"), "--method", "sagan"]) == 0
    assert len(calls) == 1  # the SA-GAN starts from the input's reading; nothing would show the result's
    capsys.readouterr()
    assert main(command + ["--out", str(tmp_path / "json"), "--json"]) == 0
    face = json.loads(capsys.readouterr().out)["files"][0]["faces"][0]
    assert len(calls) == 3
    for reading in (face["reading_before"], face["reading_after"]):
        assert set(reading) == set(EXPRESSIONS) and abs(sum(reading.values()) - 1) < 1e-3
    assert face["source_expression"] == max(face["reading_before"], key=face["reading_before"].get)


def test_missing_inputs_are_reported(tmp_path, photos, models, capsys):
    photos["astronaut"].save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), str(tmp_path / "nope.jpg"), "--models", str(models),
                 "--out", str(tmp_path / "out")])
    assert code == 1 and "nope.jpg: no such file" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--to", "ecstatic"], "Unknown expression"),
    (["--to", "sad"], "happy, neutral"),  # this CycleGAN knows neutral <-> happy only
    (["--method", "nst"], "--reference"),
])
def test_setup_errors_stop_early(tmp_path, photos, models, capsys, extra, message):
    photos["astronaut"].save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / "out"), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


def test_detector_choice(tmp_path, photos, models, capsys, monkeypatch):
    assert build_parser().parse_args(["edit", "a.jpg", "--out", "o"]).detector == "retinaface"
    photos["astronaut"].save(tmp_path / "a.png")
    for detector in ("retinaface", "haar"):
        code = main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / detector),
                     "--detector", detector, "--json"])
        summary = json.loads(capsys.readouterr().out)
        assert code == 0 and len(summary["files"][0]["faces"]) == 1
    # Without onnxruntime the default detector stops the run at once and says what to do; Haar still works.
    import expr_models.faces.detection.retinaface as retinaface

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    retinaface._load_session.cache_clear()
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / "none")])
    error = capsys.readouterr().err
    assert code == 2 and "pip install onnxruntime" in error and "--detector haar" in error
    assert main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / "h"),
                 "--detector", "haar"]) == 0
    retinaface._load_session.cache_clear()  # the next test's sessions load with onnxruntime again


def test_missing_checkpoints(tmp_path, photos, capsys):
    photos["astronaut"].save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert code == 2 and "No cyclegan checkpoint" in capsys.readouterr().err


def test_style_transfer_with_reference(tmp_path, photos, models, capsys):
    photos["astronaut"].save(tmp_path / "a.png")
    photos["grace"].save(tmp_path / "ref.jpg")
    code = main(["edit", str(tmp_path / "a.png"), "--method", "nst", "--reference", str(tmp_path / "ref.jpg"),
                 "--steps", "1", "--models", str(models), "--out", str(tmp_path / "out"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["files"][0]["method"] == "nst"


def test_module_entry_point(tmp_path, photos, models):
    photos["grace"].save(tmp_path / "g.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "expr_models", "edit", str(tmp_path / "g.jpg"), str(tmp_path / "bad.jpg"),
                          "--models", str(models), "--out", str(tmp_path / "out"), "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert [r["error"] is None for r in summary["files"]] == [True, False]
    assert np.asarray(Image.open(tmp_path / "out" / "g.png")).shape == (600, 512, 3)


def _profile_and_exif(image: Image.Image) -> tuple[bytes, bytes]:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any valid profile bytes will do
    profile = profile[:16] + b"RGB " + profile[20:]  # an RGB-space profile header, as a Display-P3 photo's has
    exif = image.getexif()
    exif[0x0112] = 1  # orientation: already upright
    exif[0x010F] = "TestCam"  # make
    return profile, exif.tobytes()


@pytest.mark.parametrize("output_format", ["png", "webp", "jpg"])
def test_outputs_keep_colour_profile_and_exif(tmp_path, photos, models, output_format):
    profile, exif = _profile_and_exif(photos["astronaut"])
    photos["astronaut"].save(tmp_path / "a.jpg", quality=95, icc_profile=profile, exif=exif)
    code = main(["edit", str(tmp_path / "a.jpg"), "--models", str(models), "--out", str(tmp_path / "out"),
                 "--format", output_format])
    assert code == 0
    with Image.open(tmp_path / "out" / f"a.{output_format}") as edited:
        assert edited.format == {"png": "PNG", "webp": "WEBP", "jpg": "JPEG"}[output_format]
        assert edited.info.get("icc_profile") == profile
        assert edited.getexif().get(0x010F) == "TestCam"


def test_rotated_input_loses_its_orientation_tag(tmp_path, photos, models):
    upright = photos["grace"]
    exif = upright.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise on display": the file holds the photo turned the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert main(["edit", str(tmp_path / "r.jpg"), "--models", str(models), "--out", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "r.png") as edited:
        assert upright.size[0] != upright.size[1] and edited.size == upright.size  # written upright ...
        assert 0x0112 not in edited.getexif()  # ... so no viewer may rotate it again


def test_png_output_is_lossless_outside_the_faces(tmp_path, photos, models, capsys):
    photos["grace"].save(tmp_path / "g.png")
    code = main(["edit", str(tmp_path / "g.png"), "--models", str(models), "--out", str(tmp_path / "out"),
                 "--json", "--max-faces", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    source = np.asarray(photos["grace"])
    with Image.open(tmp_path / "out" / "g.png") as edited:
        changed = np.any(np.asarray(edited.convert("RGB")) != source, axis=-1)
    assert changed.any()
    rows, cols = np.nonzero(changed)
    # Every changed pixel lies within the face's crop square (box side x 1.25, so 0.75 sides from the centre is a
    # safe bound); everything else is byte-identical.
    x0, y0, x1, y1 = summary["files"][0]["faces"][0]["box"]
    cx, cy, reach = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * max(x1 - x0, y1 - y0)
    assert cy - reach <= rows.min() and rows.max() <= cy + reach and cx - reach <= cols.min() and cols.max() <= cx + reach


def test_a_failed_write_is_reported_and_the_batch_goes_on(tmp_path, photos, models, capsys, monkeypatch):
    from expr_models import cli

    for name in ("a", "b", "c"):
        photos["astronaut"].save(tmp_path / f"{name}.jpg")
    real_save = cli.save_image

    def failing_save(image, destination, *args, **kwargs):
        if Path(destination).stem == "b":
            raise OSError("No space left on device")
        return real_save(image, destination, *args, **kwargs)

    monkeypatch.setattr(cli, "save_image", failing_save)
    code = main(["edit", *(str(tmp_path / f"{n}.jpg") for n in "abc"), "--models", str(models),
                 "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    summary = json.loads(captured.out)
    assert [Path(r["input"]).name for r in summary["files"]] == ["a.jpg", "b.jpg", "c.jpg"]  # input order
    errors = [r["error"] for r in summary["files"]]
    assert errors[0] is None and errors[2] is None and "No space left" in errors[1]
    assert summary["files"][1]["output"] is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_control_flags_are_parsed_and_checked(capsys):
    args = build_parser().parse_args(["edit", "a.jpg", "--out", "o", "--smile", "0.5", "--mouth-open", "-1",
                                      "--brows", "1", "--intensity", "1.5"])
    assert (args.smile, args.mouth_open, args.brows, args.eyes, args.intensity) == (0.5, -1.0, 1.0, 0.0, 1.5)
    for flag, value, message in [("--smile", "1.5", "must be between -1 and 1, got 1.5"),
                                 ("--eyes", "wide", "must be a number, got 'wide'"),
                                 ("--brows", "nan", "must be a number, got 'nan'")]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["edit", "a.jpg", "--out", "o", flag, value])
        assert f"{flag}: {message}" in capsys.readouterr().err


def test_mesh_edit_with_controls_records_them_and_applies_them(tmp_path, photos, models, capsys):
    from expr_models.pipeline import ExpressionEditor

    photos["astronaut"].save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), "--method", "mesh", "--to", "happy", "--intensity", "1.2",
                 "--smile", "0.6", "--brows", "-0.3", "--models", str(models), "--out", str(tmp_path / "out"),
                 "--json"])
    summary = json.loads(capsys.readouterr().out)
    controls = {"smile": 0.6, "mouth_open": 0.0, "brows": -0.3, "eyes": 0.0}
    assert code == 0 and summary["controls"] == controls and summary["intensity"] == 1.2
    record = summary["files"][0]
    assert record["error"] is None and record["controls"] == controls and record["intensity"] == 1.2
    # The file is the editor's own edit with those controls, and they changed it.
    editor = ExpressionEditor.from_pretrained(models, num_threads=1)
    expected = editor.edit(photos["astronaut"], method="mesh", target="happy", intensity=1.2, smile=0.6, brows=-0.3)
    plain = editor.edit(photos["astronaut"], method="mesh", target="happy", intensity=1.2)
    with Image.open(tmp_path / "out" / "a.png") as written:
        written = np.asarray(written.convert("RGB"))
    assert np.array_equal(written, np.asarray(expected.image))
    assert not np.array_equal(written, np.asarray(plain.image))


@pytest.mark.parametrize("extra, message", [
    (["--method", "nst", "--reference", "REF", "--smile", "0.5"],
     "--method nst takes no --smile 0.5 (only methods that move the face mesh take them)"),
    (["--method", "cyclegan", "--brows", "-0.25", "--eyes", "1"],
     "--method cyclegan takes no --brows -0.25 --eyes 1 (its checkpoints' generators move no face mesh)"),
    (["--method", "sagan", "--to", "sad", "--intensity", "1.2"], "--intensity goes up to 1 for --method sagan"),
])
def test_controls_and_intensity_a_method_cannot_take_stop_early(tmp_path, photos, models, capsys, extra, message):
    photos["astronaut"].save(tmp_path / "a.png")
    extra = [str(tmp_path / "a.png") if item == "REF" else item for item in extra]
    code = main(["edit", str(tmp_path / "a.png"), "--models", str(models), "--out", str(tmp_path / "out"), *extra])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    assert not (tmp_path / "out" / "a.png").exists()


def test_zero_controls_leave_methods_without_them_alone(tmp_path, photos, models, capsys):
    photos["astronaut"].save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), "--method", "sagan", "--to", "sad", "--smile", "0",
                 "--models", str(models), "--out", str(tmp_path / "out"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["controls"] == {"smile": 0.0, "mouth_open": 0.0, "brows": 0.0, "eyes": 0.0}
