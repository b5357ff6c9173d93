"""Dataset packaging: parsers, labels, splits, defect reporting, recipes and the prepare_data CLI.

Fixtures are generated in tmp_path in each dataset's real naming and format (tests/fixtures_data.py); the real data
is only read by the test marked ``data``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Image as ImageFeature
from datasets import load_from_disk
from PIL import Image

from expr_models.data import (
    BuildReport,
    build_ckplus,
    build_expressions,
    build_fei,
    build_fer2013,
    build_imagefolder,
    build_jaffe,
    build_paper,
    build_paper_fer,
    build_wider,
    crop_training_face,
    parse_wider_gt,
    split_class_counts,
    split_subjects,
    subject_disjoint_check,
)
from expr_models.labels import EXPRESSIONS_WITH_CONTEMPT
from tests.fixtures_data import (
    CKPLUS_SUBJECTS,
    FEI_SUBJECTS,
    FER_CLASSES,
    JAFFE_SUBJECTS,
    WIDER_TRAIN_GT,
    make_ckplus,
    make_fei,
    make_fer2013,
    make_jaffe,
    make_wider,
    random_gray,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data"
JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad",
               "SU": "surprise"}


def image_names(dsd) -> dict[str, list[str]]:
    """The stored image path of every record per split, without decoding the images."""
    return {split: [row["path"] for row in ds.cast_column("image", ImageFeature(decode=False))["image"]]
            for split, ds in dsd.items()}


def expression_names(dataset) -> list[str]:
    return [EXPRESSIONS_WITH_CONTEMPT[i] for i in dataset["expression"]]


def reasons(report: BuildReport) -> Counter:
    return report.bad_by_reason()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> SimpleNamespace:
    """One ../shared/data look-alike for the module (the recipes read several sources from it)."""
    root = tmp_path_factory.mktemp("shared_data")
    return SimpleNamespace(
        root=root,
        jaffe=make_jaffe(root / "jaffe"),
        fei=make_fei(root / "fei"),
        fer=make_fer2013(root / "fer2013"),
        ckplus=make_ckplus(root / "ckplus48"),
        wider=make_wider(root / "wider_face"),
    )


# --------------------------------------------------------------------------------------------------------------------
# Sources


def test_jaffe_labels_grayscale_and_subject_split(shared):
    report = BuildReport("jaffe")
    dsd = build_jaffe(shared.root / "jaffe", seed=0, report=report)

    assert list(dsd) == ["train", "validation", "test"]
    assert sum(report.kept.values()) == len(shared.jaffe["files"]) == 9 * len(JAFFE_SUBJECTS)
    assert report.bad == []
    counts = Counter(name for ds in dsd.values() for name in expression_names(ds))
    assert counts == {"angry": 6, "disgust": 6, "fear": 6, "sad": 6, "surprise": 6, "happy": 12, "neutral": 12}
    check = subject_disjoint_check(dsd)
    assert check.ok and sum(check.subjects_per_split.values()) == len(JAFFE_SUBJECTS)

    # The KA fixtures are palette-mode; every stored image is 'L' and shows the palette's gray values.
    assert Image.open(shared.root / "jaffe" / "KA.HA1.4.tiff").mode == "P"
    assert Image.open(shared.root / "jaffe" / "KL.HA1.13.tiff").mode == "L"
    names = image_names(dsd)
    for split, ds in dsd.items():
        for name, row in zip(names[split], ds):
            code, subject, gray = shared.jaffe["files"][name]
            assert (row["subject"], row["source"]) == (subject, "jaffe")
            assert EXPRESSIONS_WITH_CONTEMPT[row["expression"]] == JAFFE_CODES[code]
            assert row["image"].mode == "L"
            np.testing.assert_array_equal(np.asarray(row["image"]), gray)


def test_shared_vocabulary(shared):
    dsd = build_fei(shared.root / "fei")
    assert dsd["train"].features["expression"].names == list(EXPRESSIONS_WITH_CONTEMPT)


def test_jaffe_reports_bad_names_and_keeps_the_good(tmp_path):
    make_jaffe(tmp_path, subjects=("KA", "KL", "KM"))
    (tmp_path / "KA.XX1.99.tiff").write_bytes((tmp_path / "KA.HA1.4.tiff").read_bytes())  # unknown code
    (tmp_path / "README").write_text("notes")
    (tmp_path / "KL.HA9.98.tiff").write_bytes(b"\x00" * 10)  # right name, not an image
    (tmp_path / ".DS_Store").write_bytes(b"")  # clutter, not a record

    report = BuildReport("jaffe")
    dsd = build_jaffe(tmp_path, report=report)
    assert sum(len(ds) for ds in dsd.values()) == 27
    assert reasons(report) == {"file name not in the JAFFE pattern SS.XXn.id.tiff": 1, "unknown expression label": 1,
                               "unreadable image": 1}
    assert {r.path for r in report.bad} == {"README", "KA.XX1.99.tiff", "KL.HA9.98.tiff"}
    assert "left out 3" in report.summary()


def test_fei_neutral_and_smiling_split_by_subject(shared):
    report = BuildReport("fei")
    dsd = build_fei(shared.root / "fei", seed=0, report=report)
    assert sum(report.kept.values()) == 2 * len(FEI_SUBJECTS) and not report.bad
    for ds in dsd.values():
        for subject, expression in zip(ds["subject"], expression_names(ds)):
            assert subject in shared.fei["subjects"]
        # both images of a subject land in the same split
        assert Counter(zip(ds["subject"], expression_names(ds))) == {
            (s, e): 1 for s in set(ds["subject"]) for e in ("neutral", "happy")}
    names = [n for split_names in image_names(dsd).values() for n in split_names]
    assert {n for n in names if n.endswith("a.jpg")} == {f"{s}a.jpg" for s in FEI_SUBJECTS}
    assert subject_disjoint_check(dsd).ok
    assert split_class_counts(dsd)["train"]["happy"] == split_class_counts(dsd)["train"]["neutral"]


def test_fer2013_keeps_its_split_and_reports_defects(tmp_path):
    expected = make_fer2013(tmp_path)
    (tmp_path / "train" / "confused").mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "train" / "confused" / f"Training_{i}.jpg")
    (tmp_path / "train" / "happy" / "Training_broken.jpg").write_bytes(b"not a jpeg at all")
    good = sorted((tmp_path / "test" / "sad").iterdir())[0].read_bytes()
    (tmp_path / "test" / "sad" / "PublicTest_cut.jpg").write_bytes(good[: len(good) // 2])  # truncated file

    report = BuildReport("fer2013")
    dsd = build_fer2013(tmp_path, seed=0, report=report)
    assert reasons(report) == {"unknown expression label": 2, "unreadable image": 2}
    assert len(dsd["test"]) == expected["test"]
    assert len(dsd["train"]) + len(dsd["validation"]) == expected["train"]
    assert len(dsd["validation"]) == len(FER_CLASSES)  # 10% of 10 per class
    assert set(dsd["train"]["subject"]) == {""}
    names = image_names(dsd)
    assert all(n.startswith("train/") for n in names["validation"])
    assert all(n.startswith("test/") for n in names["test"])
    for split, ds in dsd.items():  # the class comes from the folder
        assert [n.split("/")[1] for n in names[split]] == expression_names(ds)
    check = subject_disjoint_check(dsd)
    assert check.ok and check.records_without_subject == sum(len(ds) for ds in dsd.values())


def test_ckplus_label_mapping_and_subject_split(shared, tmp_path):
    report = BuildReport("ckplus")
    dsd = build_ckplus(shared.root / "ckplus48", seed=0, report=report)
    per_class = shared.ckplus["per_class"]
    total = Counter(name for ds in dsd.values() for name in expression_names(ds))
    assert total == {name: per_class for name in ("angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")}
    assert not report.bad
    check = subject_disjoint_check(dsd)
    assert check.ok and sum(check.subjects_per_split.values()) == len(CKPLUS_SUBJECTS)
    assert all(s.startswith("S") for ds in dsd.values() for s in ds["subject"])

    # A file name without a subject id cannot be placed subject-disjointly: reported, not guessed.
    make_ckplus(tmp_path, subjects=("S005", "S010", "S011"), frames=1)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "happy" / "frame_0001.png")
    report = BuildReport("ckplus")
    dsd = build_ckplus(tmp_path, report=report)
    assert reasons(report) == {"no subject id in the file name, cannot split by subject": 1}
    assert sum(len(ds) for ds in dsd.values()) == 7 * 3


def test_splits_are_seeded_and_reproducible(shared):
    first = image_names(build_jaffe(shared.root / "jaffe", seed=0))
    again = image_names(build_jaffe(shared.root / "jaffe", seed=0))
    assert first == again
    others = [image_names(build_fei(shared.root / "fei", seed=s)) for s in (1, 2)]
    assert image_names(build_fei(shared.root / "fei", seed=1)) == others[0]
    assert others[0] != others[1]
    fer = [image_names(build_fer2013(shared.root / "fer2013", seed=s))["validation"] for s in (0, 0, 1)]
    assert fer[0] == fer[1] != fer[2]


def test_split_subjects_fractions():
    assignment = split_subjects([f"s{i}" for i in range(80)], seed=3)
    assert Counter(assignment.values()) == {"train": 56, "validation": 12, "test": 12}
    assert Counter(split_subjects(["a", "b", "c"], seed=0).values()) == {"train": 1, "validation": 1, "test": 1}
    assert set(split_subjects(["a", "b"], seed=0).values()) == {"train"}


def test_disjoint_check_finds_shared_subjects(shared):
    from datasets import concatenate_datasets

    dsd = build_jaffe(shared.root / "jaffe")
    dsd["test"] = concatenate_datasets([dsd["test"], dsd["train"].select([0])])
    check = subject_disjoint_check(dsd)
    leaked = f"jaffe:{dsd['train'][0]['subject']}"
    assert not check.ok and check.overlaps == {"train/test": [leaked]}
    assert "NO" in str(check)


def test_imagefolder_with_and_without_split_folders(shared, tmp_path):
    dsd = build_imagefolder(shared.root / "fer2013")
    assert sorted(dsd) == ["test", "train"]

    for name, count in (("Happy", 10), ("neutral", 10), ("mystery", 1)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(random_gray(np.random.default_rng(i), 20, 20)).save(tmp_path / name / f"{i}.png")
    report = BuildReport("imagefolder")
    dsd = build_imagefolder(tmp_path, seed=0, report=report)
    assert {split: len(ds) for split, ds in dsd.items()} == {"train": 16, "validation": 2, "test": 2}
    assert reasons(report) == {"unknown expression label": 1}


# --------------------------------------------------------------------------------------------------------------------
# WIDER FACE


def test_wider_parser_survives_defects():
    report = BuildReport("wider")
    entries = {e.file: e for e in parse_wider_gt(WIDER_TRAIN_GT.splitlines(), report, "train_gt")}
    assert sorted(entries) == [f"0--Parade/0_Parade_marchingband_1_{i}.jpg" for i in (1, 2, 3, 4, 5)]
    one = entries["0--Parade/0_Parade_marchingband_1_1.jpg"].faces
    assert [f["invalid"] for f in one] == [False, True]
    assert one[1] == {"x1": 2, "y1": 3, "w": 6, "h": 7, "blur": 2, "expression": 1, "illumination": 1,
                      "invalid": True, "occlusion": 2, "pose": 1}
    assert entries["0--Parade/0_Parade_marchingband_1_3.jpg"].faces == []  # no faces, placeholder line consumed
    assert len(entries["0--Parade/0_Parade_marchingband_1_4.jpg"].faces) == 2
    assert entries["0--Parade/0_Parade_marchingband_1_4.jpg"].dropped == [("zero-size boxes dropped",
                                                                           "30 20 0 5 2 0 0 0 1 0")]
    assert [(r.path, r.reason) for r in report.bad] == [("0--Parade/0_Parade_marchingband_1_6.jpg",
                                                         "truncated gt entry")]

    # Never crash, whatever the lines.
    for lines in ([], ["garbage"], ["a.jpg"], ["a.jpg", "2", "1 2 3 4 0 0 0 0 0 0"], ["a.jpg", "-1"], ["\x00\xff"]):
        parse_wider_gt(lines, BuildReport("wider"))


def test_build_wider_reports_every_defect_and_keeps_good_records(shared):
    report = BuildReport("wider")
    dsd = build_wider(shared.root / "wider_face", report=report)
    assert {split: len(ds) for split, ds in dsd.items()} == {"train": shared.wider["train_kept"],
                                                             "validation": shared.wider["validation_kept"]}
    assert dict(report.kept) == {"train": 3, "validation": 3}
    assert reasons(report) == {
        "listed in wider_face_train_bbx_gt.txt but not in this subset": 1,  # 2
        "unreadable image": 1,  # 5
        "truncated gt entry": 2,  # train 6 (end of file), val 3 (cut short by the next entry)
        "image present but without a complete gt entry": 1,  # train 7
        "gt entry without a box count": 1,  # val 4
        "duplicate gt entry (the first one is kept)": 1,  # val 1 again
    }
    assert report.notes["zero-size boxes dropped"] == 1
    assert report.notes["malformed box lines dropped"] == 2  # val 2: text line and blur=9
    assert report.notes["boxes flagged invalid (kept, invalid=True)"] == 1

    train = dsd["train"]
    assert train["file"] == [f"0--Parade/0_Parade_marchingband_1_{i}.jpg" for i in (1, 3, 4)]
    assert train["event"] == ["0--Parade"] * 3
    assert [len(f) for f in train["faces"]] == [2, 0, 2]
    assert train.features["faces"].feature["blur"].names == ["clear", "normal", "heavy"]
    assert train[0]["image"].size == (40, 30)
    assert [len(f) for f in dsd["validation"]["faces"]] == [1, 1, 1]
    assert dsd["validation"]["faces"][0][0]["h"] == 12  # the first of the duplicate entries


# --------------------------------------------------------------------------------------------------------------------
# Recipes


@pytest.fixture
def fake_detector(monkeypatch):
    """The real crop_face with a stand-in detector: a box on the 32x32 JAFFE fixtures, nothing on FEI's."""
    face = pytest.importorskip("expr_models.faces.geometry")
    detection = pytest.importorskip("expr_models.faces.detection")
    calls = []

    def detect_faces(image, detector=None):
        # Training crops keep the Haar framing every committed model was trained on, whatever the editor's default.
        assert isinstance(detector, detection.HaarFaceDetector)
        image = np.asarray(image)
        calls.append(image.shape)
        return [face.FaceBox(6, 6, 26, 26, 0.9)] if image.shape[:2] == (32, 32) else []

    monkeypatch.setattr(detection, "detect_faces", detect_faces)
    return calls


def test_paper_recipe_crops_happy_and_neutral(shared, fake_detector):
    report = BuildReport("paper")
    dsd = build_paper(shared.root, seed=0, crop_size=24, report=report)
    total = Counter(name for ds in dsd.values() for name in expression_names(ds))
    jaffe_pairs, fei_pairs = 4 * len(JAFFE_SUBJECTS), 2 * len(FEI_SUBJECTS)
    assert total == {"happy": (jaffe_pairs + fei_pairs) // 2, "neutral": (jaffe_pairs + fei_pairs) // 2}
    assert all(shape[-1] == 3 for shape in fake_detector)  # the detector gets RGB arrays
    assert report.notes["no face found, centre square used"] == 2 * len(FEI_SUBJECTS)
    assert report.notes["jaffe images of other expressions, not in this recipe"] == 5 * len(JAFFE_SUBJECTS)
    for ds in dsd.values():
        for row in ds:
            assert row["image"].mode == "L" and row["image"].size == (24, 24)
    sources = Counter(s for ds in dsd.values() for s in ds["source"])
    assert sources == {"jaffe": jaffe_pairs, "fei": fei_pairs}
    check = subject_disjoint_check(dsd)
    assert check.ok and sum(check.subjects_per_split.values()) == len(JAFFE_SUBJECTS) + len(FEI_SUBJECTS)
    # the JAFFE box (20 px, x1.25 = 25 px square) is shrunk to 24: not upscaled; FEI's 26 px centre square neither
    assert not any(v for ds in dsd.values() for v in ds["upscaled"])


def test_paper_no_crop_keeps_whole_images(shared):
    dsd = build_paper(shared.root, crop=False)
    sizes = {row["image"].size for ds in dsd.values() for row in ds}
    assert sizes == {(32, 32), (26, 36)}


def test_paper_fer_adds_upscaled_fer2013(shared, fake_detector):
    report = BuildReport("paper_fer")
    dsd = build_paper_fer(shared.root, seed=0, crop_size=64, report=report)
    fer_rows = [row for ds in dsd.values() for row in ds if row["source"] == "fer2013"]
    assert len(fer_rows) == 2 * (10 + 3)
    assert all(row["upscaled"] and row["image"].size == (64, 64) and row["subject"] == "" for row in fer_rows)
    assert {EXPRESSIONS_WITH_CONTEMPT[row["expression"]] for row in fer_rows} == {"happy", "neutral"}
    assert subject_disjoint_check(dsd).ok


def test_expressions_recipe_seven_classes_at_one_size(shared, fake_detector):
    report = BuildReport("expressions")
    dsd = build_expressions(shared.root, seed=0, crop_size=32, report=report)
    names = {name for ds in dsd.values() for name in expression_names(ds)}
    assert names == set(EXPRESSIONS_WITH_CONTEMPT) - {"contempt"}
    assert report.notes["ckplus images of other expressions, not in this recipe"] == shared.ckplus["per_class"]
    assert Counter(s for ds in dsd.values() for s in ds["source"]) == {
        "jaffe": 9 * len(JAFFE_SUBJECTS), "fer2013": 7 * 13, "ckplus": 6 * shared.ckplus["per_class"]}
    assert {row["image"].size for ds in dsd.values() for row in ds} == {(32, 32)}
    assert subject_disjoint_check(dsd).ok


def test_crop_training_face_frames_the_box_or_else_the_centre_square():
    face = pytest.importorskip("expr_models.faces.geometry")
    # A dark RGB photo with one bright orange 20x20 "face"; the crop is grayscale, framed by the box's scaled square.
    photo = np.zeros((60, 80, 3), np.uint8)
    photo[10:30, 40:60] = (255, 128, 0)
    face_gray = np.asarray(Image.fromarray(photo).convert("L"))[20, 50]
    crop, upscaled = crop_training_face(Image.fromarray(photo), 50, face.FaceBox(40, 10, 60, 30))
    pixels = np.asarray(crop)
    assert crop.mode == "L" and crop.size == (50, 50)
    assert upscaled  # the box's 25 px square is enlarged to 50
    assert np.all(np.abs(pixels[8:42, 8:42].astype(int) - face_gray) <= 6)  # the face fills the middle ...
    assert max(pixels[0].max(), pixels[-1].max(), pixels[:, 0].max(), pixels[:, -1].max()) == 0  # ... margins dark

    # Without a box: the centre square (here white between two black bands), whatever the size.
    banded = np.zeros((40, 60), np.uint8)
    banded[:, 10:50] = 255
    for size, enlarged in ((20, False), (40, False), (80, True)):
        crop, upscaled = crop_training_face(Image.fromarray(banded), size)
        assert crop.mode == "L" and crop.size == (size, size) and upscaled == enlarged
        assert np.asarray(crop).min() == 255


def test_paper_with_the_real_detector_falls_back_on_faceless_fixtures(shared):
    pytest.importorskip("expr_models.faces.geometry")
    report = BuildReport("paper")
    dsd = build_paper(shared.root, crop_size=16, report=report)
    kept = sum(len(ds) for ds in dsd.values())
    assert kept == 4 * len(JAFFE_SUBJECTS) + 2 * len(FEI_SUBJECTS)
    assert report.notes["no face found, centre square used"] == kept  # random pictures hold no faces


# --------------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_saves_dataset_card_and_summary(shared, tmp_path, capsys):
    from train.tools.prepare_data import main

    out = tmp_path / "out"
    assert main(["--source", "ckplus", "--root", str(shared.root / "ckplus48"), "--out", str(out), "--summary"]) == 0
    printed = capsys.readouterr().out
    assert "subject-disjoint: yes" in printed and "contempt" in printed and "total" in printed

    dsd = load_from_disk(str(out))
    assert sum(len(ds) for ds in dsd.values()) == 7 * shared.ckplus["per_class"]
    card = (out / "README.md").read_text()
    assert "Lucey" in card and "research-only" in card.lower() and "private" in card and "contempt" in card
    assert json.loads((out / "build_report.json").read_text())["source"] == "ckplus"


def test_cli_missing_root_is_one_line_error(tmp_path, capsys):
    from train.tools.prepare_data import main

    assert main(["--source", "jaffe", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_refuses_push_without_private(tmp_path, capsys):
    from train.tools.prepare_data import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--source", "fei", "--out", str(tmp_path / "o"), "--push-to-hub", "me/fei"])
    assert exit_info.value.code != 0
    assert "--private" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_cli_push_offline_fails_with_one_clear_line(shared, tmp_path, capsys, monkeypatch, hub):
    """HF_HUB_OFFLINE=1, or an endpoint nobody listens on: one line on stderr, non-zero exit, no real network."""
    import huggingface_hub.constants

    from train.tools.prepare_data import main

    if hub == "offline":  # what HF_HUB_OFFLINE=1 sets when huggingface_hub is imported
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    out = tmp_path / "out"
    code = main(["--source", "fei", "--root", str(shared.root / "fei"), "--out", str(out),
                 "--push-to-hub", "someone/faces", "--private"])
    assert code != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and "cannot reach the Hugging Face Hub" in errors[0], errors
    assert (out / "dataset_dict.json").exists()  # the local copy is kept


def test_benchmark_skips_without_data(tmp_path):
    script = REPO_ROOT / "benchmarks" / "package_all_data.py"
    result = subprocess.run([sys.executable, str(script), "--data-root", str(tmp_path / "absent")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "skip" in result.stdout.lower()


# --------------------------------------------------------------------------------------------------------------------
# Real data (../shared/data): counts and disjointness, fast sources only


@pytest.mark.data
def test_real_data_counts_and_disjointness():
    if not REAL_DATA.is_dir():
        pytest.skip(f"{REAL_DATA} not found")
    for build, folder, expected in ((build_jaffe, "jaffe", 213), (build_fei, "fei", 160),
                                    (build_ckplus, "ckplus48", 981)):
        report = BuildReport(folder)
        dsd = build(REAL_DATA / folder, seed=0, report=report)
        assert sum(len(ds) for ds in dsd.values()) == expected, report.summary()
        assert not report.bad, report.summary()
        check = subject_disjoint_check(dsd)
        assert check.ok and check.records_without_subject == 0
        assert set(dsd) == {"train", "validation", "test"}
        if folder == "jaffe":
            assert {row["image"].mode for row in dsd["test"]} == {"L"}
