"""``python -m expr_models evaluate`` end to end, on generated faces and tiny random checkpoints.

The faces are scikit-image's astronaut photo with a mouth drawn on (a smile arc for happy, a flat line for neutral
and so on), lit differently per "subject". Nothing comes from ../shared/data, except in the slow test at the end.
"""

import argparse
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage
from skimage import data as skimage_data

import expr_models as em
from expr_models import evaluation
from expr_models.faces.detection import HaarFaceDetector, detect_faces
from expr_models.models.second_reader import SecondReader, SecondReaderConfig
from expr_models.faces.geometry import crop_face
from expr_models.labels import EXPRESSIONS, EXPRESSIONS_WITH_CONTEMPT

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
RAW_DATA = REPO.parent / "shared" / "data"
FEATURES = Features({"image": Image(), "expression": ClassLabel(names=list(EXPRESSIONS_WITH_CONTEMPT)),
                     "subject": Value("string"), "source": Value("string")})
# (centre, axes, start angle, end angle) of the mouth drawn on the astronaut, per expression; the Haar box is
# x 177..274, y 66..163, so the mouth sits near (225, 145).
MOUTHS = {"happy": ((225, 138), (20, 9), 0, 180), "neutral": ((225, 145), (18, 1), 0, 360),
          "sad": ((225, 152), (18, 7), 180, 360), "surprise": ((225, 146), (7, 9), 0, 360),
          "angry": ((225, 147), (16, 2), 0, 360)}


def face_photo(expression: str, subject: int) -> np.ndarray:
    """The astronaut with a drawn mouth, lit per subject: a 512x512 RGB 'photo'."""
    photo = skimage_data.astronaut().astype(np.float32)
    photo = np.clip(photo * (0.8 + 0.1 * subject) + 10 * subject, 0, 255).astype(np.uint8)
    centre, axes, start, end = MOUTHS[expression]
    cv2.ellipse(photo, centre, axes, 0, start, end, (60, 30, 30), 3)
    return photo


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A DatasetDict of aligned 64x64 crops (test split = held-out subjects), the raw 'photos' of the FEI-named
    faces, and tiny random checkpoints."""
    root = tmp_path_factory.mktemp("evaluation")
    box = detect_faces(skimage_data.astronaut(), detector=HaarFaceDetector())[0]  # the recipes' detector
    raw = root / "raw"
    (raw / "fei").mkdir(parents=True)
    rows = {"train": [], "test": []}

    def add(split, photo, expression, subject, source, name):
        crop, _ = crop_face(photo, box, 64)  # the recipes' framing
        gray = PILImage.fromarray(crop).convert("L")
        buffer = io.BytesIO()
        gray.save(buffer, format="PNG")
        rows[split].append({"image": {"bytes": buffer.getvalue(), "path": name}, "expression": expression,
                            "subject": subject, "source": source})

    # FEI-like pairs: one neutral and one smiling photo per subject; whole photos in raw/fei.
    for subject in (1, 2, 3):
        for pose, expression in (("a", "neutral"), ("b", "happy")):
            photo = face_photo(expression, subject)
            PILImage.fromarray(photo).convert("L").save(raw / "fei" / f"{subject}{pose}.jpg", quality=95)
            add("test", photo, expression, str(subject), "fei", f"{subject}{pose}.jpg")
    # A JAFFE-like subject with more expressions; no raw photos, so its whole-photo check uses the stored crop.
    for number, expression in enumerate(("happy", "neutral", "sad", "surprise", "angry")):
        add("test", face_photo(expression, 4), expression, "KA", "jaffe", f"KA.{expression[:2].upper()}1.{number}.tiff")
    add("train", face_photo("happy", 0), "happy", "9", "fei", "9b.jpg")
    dsd = DatasetDict({split: Dataset.from_list(items, features=FEATURES) for split, items in rows.items()})
    dsd.save_to_disk(str(root / "faces"))

    torch.manual_seed(0)
    models = root / "checkpoints"
    em.CycleGANModel(em.CycleGANConfig(resolution=64, generator_channels=8, n_residual_blocks=1,
                                       with_discriminators=False)).save_pretrained(models / "cyclegan")
    em.SAGANModel(em.SAGANConfig(resolution=64, generator_channels=8, n_residual_blocks=1,
                                 with_discriminator=False)).save_pretrained(models / "sagan")
    em.ExpressionClassifier(em.ExpressionClassifierConfig(widths=(8, 16, 16, 32))).save_pretrained(
        models / "classifier")
    SecondReader(SecondReaderConfig()).save_pretrained(models / "second_reader")
    return {"root": root, "data": root / "faces", "raw": raw, "models": models}


def evaluate_args(*argv: str) -> argparse.Namespace:
    return evaluation.add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def run_cli(*argv: str) -> int:
    """Through the package's command line when it has the evaluate command, else through evaluation.main."""
    from expr_models import cli

    if any(getattr(add, "__name__", "") == "add_evaluate_parser" for add in getattr(cli, "COMMANDS", [])):
        return cli.main(["evaluate", *argv])
    return evaluation.main(evaluate_args(*argv))


@pytest.fixture(scope="module")
def results(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    status = run_cli("--models", str(setup["models"]), "--data", str(setup["data"]), "--out", str(out),
                     "--raw-data", str(setup["raw"]), "--max-photos", "2")
    assert status == 0
    return json.loads((out / "evaluation.json").read_text()), (out / "evaluation.md").read_text()


def edits(results, method):
    return {row["target"]: row for row in results["datasets"]["faces"]["edits"] if row["method"] == method}


def test_report_says_where_when_and_with_what(results):
    report, _ = results
    for key in ("created", "machine", "settings", "checkpoints", "datasets", "notes", "command"):
        assert key in report
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"] == torch.__version__
    assert set(report["checkpoints"]) == {"cyclegan", "sagan", "classifier", "second_reader"}
    assert all(len(c["sha256"]) == 16 for found in report["checkpoints"].values() for c in found)
    info = report["datasets"]["faces"]["data"]
    assert info["split"] == "test" and info["faces"] == 11 and info["subjects"] == 4
    assert info["per_expression"]["happy"] == 4 and info["per_source"] == {"fei": 6, "jaffe": 5}


def test_classifier_ceiling(results):
    ceiling = results[0]["datasets"]["faces"]["classifier"]
    assert ceiling["n"] == 11 and 0.0 <= ceiling["accuracy"] <= 1.0
    assert set(ceiling["recall"]) == {"angry", "happy", "neutral", "sad", "surprise"}
    assert ceiling["n_per_expression"]["neutral"] == 4


def test_cyclegan_rows(results):
    rows = edits(results[0], "cyclegan")
    assert set(rows) == {"happy", "neutral"}
    to_happy = rows["happy"]
    assert to_happy["n"] == 4 and to_happy["inputs"] == {"neutral": 4}
    assert 0.0 <= to_happy["success_rate"] <= 1.0 and 0.0 <= to_happy["inputs_read_as_target"] <= 1.0
    assert to_happy["kid"]["subset_size"] == 4 and np.isfinite(to_happy["kid"]["mean"])
    assert -1.0 <= to_happy["upper_face"]["ssim"] <= 1.0 and to_happy["upper_face"]["l1"] >= 0
    cycle = to_happy["cycle_l1"]
    assert cycle["[0,1]"] == pytest.approx(cycle["[-1,1]"] / 2)
    assert cycle["[0,255]"] == pytest.approx(cycle["[-1,1]"] * 127.5)
    # The three FEI subjects are paired; the JAFFE-like one is not.
    paired = to_happy["paired"]
    assert paired["n_pairs"] == 3
    assert set(paired["edited_vs_real"]) == {"l1", "ssim", "lower_face_l1", "lower_face_ssim"}
    assert "paired" not in rows["neutral"]


def test_paste_back_leaves_the_rest_of_the_photo_alone(results):
    for method in ("cyclegan", "sagan"):
        for row in edits(results[0], method).values():
            photos = row["whole_photos"]
            assert photos["photos"] + photos["no_face_found"] == 2
            assert photos["photos"] >= 1 and photos["pixels_outside_mask"] > 0
            assert photos["changed_pixels_outside_mask"] == 0
    # FEI faces have their raw photos; they are used first.
    assert edits(results[0], "cyclegan")["happy"]["whole_photos"]["photo_kinds"] == {"original": 2}


def test_edited_original_photos_are_read_as_the_space_reads_them(results):
    for method in ("cyclegan", "sagan"):
        for row in edits(results[0], method).values():
            photos = row["whole_photos"]
            read = photos["read_as_target"]  # every edited original, by both readers and by both at once
            assert read["photos"] == photos["photo_kinds"].get("original", 0) >= 1
            assert set(read) == {"photos", "classifier", "second_reader", "both"}
            assert 0.0 <= read["both"] <= min(read["classifier"], read["second_reader"]) <= 1.0
    row = edits(results[0], "cyclegan")["happy"]
    read = row["whole_photos"]["read_as_target"]
    cell = f"{100 * read['classifier']:.1f}% / {100 * read['second_reader']:.1f}% ({read['photos']})"
    assert f"| `faces` | cyclegan | neutral → happy | 4 | {100 * row['success_rate']:.1f}% |" in results[1]
    assert cell in results[1]


def test_sagan_covers_every_target(results):
    rows = edits(results[0], "sagan")
    assert set(rows) == set(EXPRESSIONS)
    assert rows["disgust"]["n"] == 11 and rows["happy"]["n"] == 7  # every face not already of the target
    assert all("success_rate" in row and "kid" in row for row in rows.values())
    # every success figure by the second reader too, and by both at once (never more than either)
    for row in rows.values():
        assert 0.0 <= row["success_both_readers"] <= min(row["success_rate"], row["success_second_reader"])
    assert "cycle_l1" not in rows["happy"] and rows["happy"]["paired"]["n_pairs"] == 3


def test_markdown_tables(results):
    report, markdown = results
    assert markdown.startswith("## Evaluation")
    for heading in ("### Expression success", "### Preservation", "### Cycle reconstruction (CycleGAN)",
                    "### Paired error on FEI (neutral → happy)"):
        assert heading in markdown
    assert ("| data | method | edit | faces | success | second reader | both | whole photos "
            "| ceiling: recall on real target "
            "| ceiling: accuracy | inputs | KID x10^3 |") in markdown
    assert "### The judge: expression classifier on real held-out faces" in markdown
    assert "| data | method | cycle | faces | L1 [-1,1] | L1 [0,1] | L1 [0,255] |" in markdown
    assert "`faces` | cyclegan | neutral → happy | 4 |" in markdown
    assert "`faces` | cyclegan | neutral → happy → neutral | 4 |" in markdown
    assert markdown.count("| `faces` | sagan | others → ") >= 2 * 7  # success and preservation rows
    for line in markdown.splitlines():  # every table row has as many cells as its header
        if line.startswith("|"):
            assert line.count("|") >= 4
    assert "[-1, 1]" in markdown and "[0, 255]" in markdown and "ceiling" in markdown.lower()


def test_limit_keeps_n_faces_per_expression(setup):
    held_out = evaluation.load_held_out(setup["data"], limit=1)
    assert held_out.total == 11
    assert held_out.info()["per_expression"] == {e: 1 for e in ("angry", "happy", "neutral", "sad", "surprise")}
    # Sources take turns, so a small limit mixes them; the first neutral and the first smile are one FEI subject.
    three = evaluation.load_held_out(setup["data"], limit=3)  # happy: fei 1, jaffe, fei 2
    assert three.info()["per_source"] == {"fei": 4, "jaffe": 5}
    assert [(f.subject, f.expression) for f in three.faces if f.source == "fei"] == [
        ("1", "neutral"), ("1", "happy"), ("2", "neutral"), ("2", "happy")]


def test_realism_ratio_of_whole_photos_in_json_and_report(results, setup):
    """The FEI-named photos' held-out person, edited whole by each method, against their other photo."""
    report, markdown = results
    realism = report["realism"]
    assert realism["methods"] == ["cyclegan", "sagan"]  # no average-edit checkpoint among the tiny ones
    rows = {(row["dataset"], row["pair"], row["method"]): row for row in realism["rows"]}
    assert set(rows) == {("fei", pair, method) for pair in ("neutral->happy", "happy->neutral")
                         for method in ("cyclegan", "sagan")}
    for row in rows.values():
        assert row["subjects"] == 1 and row["photo_pairs"] == 1 and row["median_ratio"] > 0
        read = row["read_as_target"]  # the classifier's reading of the edited photo and of the real one
        assert read["photo_pairs"] == 1 and read["share"] in (0.0, 1.0) and read["real_share"] in (0.0, 1.0)
    assert "### Paired realism ratio" in markdown and "| fei | neutral → happy |" in markdown
    assert "**Read as the target** by the classifier" in markdown


def test_skips_cleanly_without_data_or_checkpoints(setup, tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluation.main(evaluate_args("--models", str(setup["models"]), "--data", str(tmp_path / "absent"),
                                         "--out", str(out))) == 0
    assert "skipped: no prepared data" in capsys.readouterr().err
    assert evaluation.main(evaluate_args("--models", str(tmp_path / "none"), "--data", str(setup["data"]),
                                         "--out", str(out))) == 0
    assert "skipped: no checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_that_is_not_a_dataset_is_an_error(setup, tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    status = evaluation.main(evaluate_args("--models", str(setup["models"]), "--data", str(tmp_path / "junk"),
                                           "--out", str(tmp_path / "out")))
    assert status == 2 and "not a dataset saved with save_to_disk" in capsys.readouterr().err


def test_without_a_classifier_the_other_metrics_remain(setup, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "cyclegan").symlink_to(setup["models"] / "cyclegan")
    report = evaluation.run_evaluation(models, [setup["data"]], methods=("cyclegan",), max_photos=0)
    row = report["datasets"]["faces"]["edits"][0]
    assert "success_rate" not in row and "cycle_l1" in row and "upper_face" in row
    assert "whole_photos" not in row and report["classifier_available"] is False
    assert "### Expression success" not in evaluation.markdown_report(report)


def test_identity_editor_preserves_everything(setup):
    """An editor that changes nothing: upper face SSIM 1 and L1 0, cycle 0, and the paired edit equals the input."""
    cyclegan = em.CycleGANModel.from_pretrained(setup["models"] / "cyclegan").eval()
    method = evaluation.cyclegan_method(cyclegan, "identity")
    method.edit = lambda x, target, references=None: x
    cyclegan.generate = lambda x, to=None: x
    held_out = evaluation.load_held_out(setup["data"])
    judge = evaluation.Judge(em.ExpressionClassifier.from_pretrained(setup["models"] / "classifier"))
    result = evaluation.evaluate_dataset(held_out, [method], judge, torch.device("cpu"), None, 0, 1)
    to_happy = next(row for row in result["edits"] if row["target"] == "happy")
    assert to_happy["upper_face"] == {"ssim": pytest.approx(1.0), "l1": 0.0}
    assert to_happy["cycle_l1"]["[-1,1]"] == 0.0
    assert to_happy["success_rate"] == to_happy["inputs_read_as_target"]
    assert to_happy["paired"]["edited_vs_real"] == to_happy["paired"]["input_vs_real"]


@pytest.mark.skipif(not (REPO / "checkpoints" / "style_features" / "config.json").is_file(),
                    reason="no committed NST features")
def test_nst_with_capped_steps(setup):
    report = evaluation.run_evaluation(REPO / "checkpoints", [setup["data"]], methods=("nst",), nst_steps=2,
                                       nst_faces=2, nst_resolution=64, raw_data=setup["raw"], max_photos=1)
    rows = {row["target"]: row for row in report["datasets"]["faces"]["edits"]}
    assert set(rows) == {"happy", "neutral"} and rows["happy"]["n"] == 2
    assert rows["happy"]["whole_photos"]["changed_pixels_outside_mask"] == 0
    assert report["settings"]["nst"] == {"steps": 2, "faces": 2, "resolution": 64}


@pytest.mark.slow
@pytest.mark.data
def test_real_data_and_committed_checkpoints(tmp_path):
    """The real evaluation: committed checkpoints on the held-out subjects of the real data (slow)."""
    checkpoints = REPO / "checkpoints"
    if not any((checkpoints / name / "config.json").is_file() for name in ("cyclegan", "sagan")):
        pytest.skip("no committed cyclegan/sagan checkpoints")
    prepared = [REPO / "prepared" / name for name in ("paper", "expressions") if (REPO / "prepared" / name).is_dir()]
    if not prepared:
        if not (RAW_DATA / "jaffe").is_dir() or not (RAW_DATA / "fei").is_dir():
            pytest.skip("../shared/data is absent")
        from expr_models.data import BuildReport, build_paper

        build_paper(RAW_DATA, crop_size=128, report=BuildReport("paper")).save_to_disk(str(tmp_path / "paper"))
        prepared = [tmp_path / "paper"]
    if (REPO / "prepared" / "wider").is_dir():
        prepared.append(REPO / "prepared" / "wider")  # face-detection AP of RetinaFace, Haar and the segmenter
    out = tmp_path / "results"
    # --limit bounds the 7-class set (FER2013 alone has 7,178 test faces); the paper set has 18 per class.
    status = run_cli("--models", str(checkpoints), "--data", *map(str, prepared), "--out", str(out),
                     "--raw-data", str(RAW_DATA), "--limit", "100", "--methods", "cyclegan", "sagan", "average", "mesh")
    assert status == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["datasets"]
    for dataset in report["datasets"].values():
        for row in dataset["edits"]:
            if "whole_photos" in row:
                assert row["whole_photos"]["changed_pixels_outside_mask"] == 0
    assert (out / "evaluation.md").read_text().startswith("## Evaluation")
    # The paired realism ratio of every method and the baseline on held-out FEI, London Set and JAFFE people.
    rows = {(row["dataset"], row["pair"], row["method"]): row for row in report["realism"]["rows"]}
    for dataset in ("fei", "london"):
        for pair in ("neutral->happy", "happy->neutral"):
            for method in ("average", "cyclegan", "sagan", "mesh"):
                row = rows[(dataset, pair, method)]
                assert row["subjects"] >= 5 and row["changed_outside_mask"] == 0
                # what a person sees, on the same edits
                assert -1.0 <= row["mesh"]["cosine"]["median"] <= 1.0 and row["mesh"]["sharpness"]["median"] > 0
    for target in ("angry", "disgust", "fear", "happy", "sad", "surprise"):
        assert rows[("jaffe", f"neutral->{target}", "average")]["subjects"] >= 1
        assert rows[("jaffe", f"neutral->{target}", "sagan")]["median_ratio"] > 0
    for detection in report.get("detection", {}).values():
        assert 0.0 <= detection["detectors"]["retinaface (default)"]["iou_0.5"]["ap"] <= 1.0
        assert 0.0 <= detection["detectors"]["haar"]["iou_0.5"]["ap"] <= 1.0


# --- face detection on WIDER-style data ------------------------------------------------------------------------------

def wider_like_dataset(path: Path) -> None:
    """Two packaged photos in the layout of ``prepare_data --source wider``: the astronaut's face (as a whole-head
    box around what Haar finds), an invalid face, a face too small to count, and a photo with no face."""
    astronaut = skimage_data.astronaut()
    found = detect_faces(astronaut, detector=HaarFaceDetector())[0]
    pad = 0.15 * found.width
    head = dict(x1=int(found.x0 - pad), y1=int(found.y0 - pad), w=int(found.width + 2 * pad),
                h=int(found.height + 2 * pad), invalid=False)
    faces = [head, dict(x1=400, y1=400, w=40, h=40, invalid=True), dict(x1=20, y1=20, w=8, h=8, invalid=False)]
    rows = {"image": [], "file": [], "event": [], "faces": []}
    for name, image, photo_faces in (("0--a/astronaut.jpg", astronaut, faces),
                                     ("0--a/coffee.jpg", skimage_data.coffee(), [])):
        buffer = io.BytesIO()
        PILImage.fromarray(image).save(buffer, format="JPEG", quality=95)
        rows["image"].append({"bytes": buffer.getvalue(), "path": name})
        rows["file"].append(name)
        rows["event"].append("0--a")
        rows["faces"].append(photo_faces)
    DatasetDict({"validation": Dataset.from_dict(rows).cast_column("image", Image())}).save_to_disk(str(path))


def test_detection_ap_of_retinaface_haar_and_the_segmenter(tmp_path):
    from expr_models.evaluation.detection import is_detection_dataset

    data_dir = tmp_path / "wider"
    wider_like_dataset(data_dir)
    assert is_detection_dataset(data_dir)
    models = tmp_path / "models"
    em.FaceSegmenter(em.FaceSegmenterConfig(backbone="mobilenet_v3_small", fpn_channels=16, box_head_size=32,
                                            min_size=128, max_size=256)).save_pretrained(models / "segmenter")
    results = evaluation.run_evaluation(models, [data_dir], methods=())
    detection = results["detection"]["wider"]
    assert detection["data"] == {"path": str(data_dir), "split": "validation", "photos": 2, "min_face": 24,
                                 "faces": 1, "ignored_faces": 2}
    assert list(detection["detectors"]) == ["retinaface (default)", "haar", "segmenter"]
    retinaface = detection["detectors"]["retinaface (default)"]  # its own whole-face box: a match at IoU 0.5
    assert retinaface["iou_0.5"]["ap"] == pytest.approx(1.0) and retinaface["iou_0.5"]["recall"] == 1.0
    assert retinaface["detections"] == 1  # nothing on the coffee, the invalid face or the tiny one
    haar = detection["detectors"]["haar"]
    assert haar["iou_0.3"]["ap"] == pytest.approx(1.0) and haar["iou_0.3"]["recall"] == 1.0
    segmenter = detection["detectors"]["segmenter"]  # untrained: any AP, but measured on the same photos
    assert 0.0 <= segmenter["iou_0.5"]["ap"] <= 1.0 and segmenter["photos"] == 2
    assert "segmenter" in results["checkpoints"]
    report = evaluation.markdown_report(results)
    assert "Face detection on WIDER FACE" in report and "| retinaface (default) |" in report and "| haar |" in report


class _FixedReader(torch.nn.Module):
    """A classifier stub that reads every face as ``class_names[index]``."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index
        self.config = argparse.Namespace(class_names=list(EXPRESSIONS), resolution=None, in_channels=None)
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values):
        logits = torch.zeros(len(pixel_values), len(EXPRESSIONS))
        logits[:, self.index] = 1.0
        return logits + self.bias


def test_mesh_edits_start_from_the_expression_the_classifier_reads(astronaut):
    """As the editor edits a face from the classifier's reading of it, the held-out crops are edited from theirs."""
    from expr_models.evaluation.editors import mesh_edit, source_reader
    from expr_models.models.face_mesh import FaceMeshModel

    assert source_reader(None) is None
    read = source_reader(_FixedReader(EXPRESSIONS.index("sad")))
    face = cv2.resize(np.ascontiguousarray(astronaut[30:230, 125:325]), (128, 128), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32) / 127.5 - 1)[None, None]
    x = x.repeat(2, 1, 1, 1)
    readings = read(x)
    assert [max(reading, key=reading.get) for reading in readings] == ["sad", "sad"]
    assert sum(readings[0].values()) == pytest.approx(1.0)
    seen = []

    def target_points(points, target, source):
        seen.append((target, source))
        return points[:, :2]

    def reading(top, happy=0.0):
        return {"sad": 0.0, "fear": 0.0, "neutral": 0.0, **{top: 0.9 - happy}, "happy": happy}

    mesher = FaceMeshModel.from_pretrained(REPO / "checkpoints" / "face_mesh").eval()
    names = ("angry", "happy", "neutral", "sad")
    edited = mesh_edit(target_points, mesher, 1, names, None, lambda crops: [reading("sad"), reading("fear")])(
        x, "neutral")
    # A reading the method does not know (fear) is edited as from its default source.
    assert seen == [("neutral", "sad"), ("neutral", "happy")] and edited.shape == x.shape
    # Read as neutral and asked for neutral: undone as a smile only with some smile in the reading.
    mesh_edit(target_points, mesher, 1, names, None, lambda crops: [reading("neutral", 0.2), reading("neutral")])(
        x, "neutral")
    assert seen[-2:] == [("neutral", "happy"), ("neutral", "neutral")]
    mesh_edit(target_points, mesher, 1, names)(x[:1], "happy")  # no reader: the method's default source
    assert seen[-1] == ("happy", "neutral")


def test_mesh_edits_leave_a_face_turned_past_the_mesh_s_reach_as_it_was(astronaut, monkeypatch):
    """As the editor leaves such a face unchanged, so does the evaluation (and the face counts as a miss)."""
    import expr_models.evaluation.editors as editors
    from expr_models.faces.mesh import FACE_SIDES, NOSE_TIP
    from expr_models.models.face_mesh import FaceMeshModel

    face = cv2.resize(np.ascontiguousarray(astronaut[30:230, 125:325]), (128, 128), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(face.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    mesher = FaceMeshModel.from_pretrained(REPO / "checkpoints" / "face_mesh").eval()
    moved = []

    def target_points(points, target, source):
        moved.append(target)
        return points[:, :2] + np.array([0.0, 3.0])  # every point 3 px down: a change wherever the warp runs

    names = ("happy", "neutral")
    frontal = editors.mesh_edit(target_points, mesher, 3, names)(x, "happy")
    assert moved == ["happy"] and not torch.allclose(frontal, x, atol=2 / 255)
    real_face_mesh = editors.face_mesh

    def profile(*args, **kwargs):  # the nose tip beyond the far cheek
        points = real_face_mesh(*args, **kwargs)
        right, left = points[FACE_SIDES[0], :2], points[FACE_SIDES[1], :2]
        points[NOSE_TIP, :2] = left + 0.2 * (left - right)
        return points

    monkeypatch.setattr(editors, "face_mesh", profile)
    turned = editors.mesh_edit(target_points, mesher, 3, names)(x, "happy")
    assert moved == ["happy"] and torch.allclose(turned, x, atol=1 / 127.5)
