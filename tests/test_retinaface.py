"""The default face detector: RetinaFace-MobileNet0.25 on onnxruntime (expr_models/faces/detection/retinaface.py), its
framing, and its errors. Photos: scikit-image's and matplotlib's samples (tests/conftest.py), and canvases made from
them."""

import sys
import threading

import numpy as np
import pytest
from PIL import Image

from expr_models.errors import CheckpointError, ExpressionEditError, MissingDependencyError
from expr_models.evaluation.metrics import box_iou
from expr_models.faces.detection import HaarFaceDetector, default_detector, detect_faces
from expr_models.faces.detection.retinaface import (DEFAULT_MODEL_PATH, MODEL_FILENAME, MODEL_SHA256,
                                                    RetinaFaceDetector, haar_framing, haar_framing_arrays,
                                                    roll_degrees)
from expr_models.faces.geometry import FaceBox, crop_face
from expr_models.pipeline import ExpressionEditor

pytest.importorskip("onnxruntime")


def xyxy(box: FaceBox) -> np.ndarray:
    return np.array([[box.x0, box.y0, box.x1, box.y1]], np.float32)


def iou(a: FaceBox, b: FaceBox) -> float:
    return float(box_iou(xyxy(a), xyxy(b))[0, 0])


def check_landmarks(box: FaceBox) -> None:
    """Two eyes side by side above the nose tip, above two mouth corners side by side, all inside the face."""
    left_eye, right_eye, nose, left_mouth, right_mouth = np.asarray(box.landmarks)
    assert box.landmarks.shape == (5, 2)
    assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    for x, y in box.landmarks:
        assert box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def test_the_committed_model_is_the_documented_file():
    import hashlib

    assert DEFAULT_MODEL_PATH.name == MODEL_FILENAME
    assert hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest() == MODEL_SHA256
    assert MODEL_SHA256 in (DEFAULT_MODEL_PATH.parent / "README.md").read_text()


def test_default_detector_is_retinaface_in_the_haar_framing():
    detector = default_detector()
    assert isinstance(detector, RetinaFaceDetector) and detector.framing == "haar"
    assert ExpressionEditor(models_dir=None).face_detector().framing == "haar"
    assert isinstance(ExpressionEditor(models_dir=None, detector="haar").face_detector(), HaarFaceDetector)
    with pytest.raises(ValueError, match="retinaface"):
        ExpressionEditor(models_dir=None, detector="yunet")


@pytest.mark.parametrize("framing", ["haar", "raw"])
def test_finds_the_astronaut_with_landmarks(astronaut, framing):
    boxes = RetinaFaceDetector(framing=framing).detect(astronaut)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.score > 0.99
    assert box.x0 < 222 < box.x1 and box.y0 < 112 < box.y1  # between her eyes
    check_landmarks(box)
    if framing == "raw":
        assert box.height > 1.15 * box.width  # brows to chin: taller than wide
    else:
        assert box.width == pytest.approx(box.height)  # a square, like Haar's


def test_finds_grace_hopper(grace_hopper):
    boxes = detect_faces(Image.fromarray(grace_hopper))
    assert len(boxes) == 1 and boxes[0].x0 < 260 < boxes[0].x1 and boxes[0].y0 < 220 < boxes[0].y1
    check_landmarks(boxes[0])


def test_no_face_in_photos_without_one():
    from skimage import data

    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    for image in (data.coffee(), data.chelsea(), data.rocket(), gradient, np.zeros((480, 640, 3), np.uint8)):
        assert detect_faces(image) == []


def test_tiny_and_odd_shaped_photos():
    detector = RetinaFaceDetector()
    for shape in ((1, 1, 3), (17, 17, 3), (37, 53, 3), (5, 300, 3), (2, 30000, 3)):
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_mapped_box_is_close_to_the_haar_box(astronaut, grace_hopper):
    # On the 373 JAFFE + FEI photos the mapped squares overlap Haar's with IoU 0.85 on average (benchmarks/
    # face_framing.py); Haar's own size varies by +-10% from face to face, so one photo is only roughly checked.
    for photo in (astronaut, grace_hopper):
        mapped = detect_faces(photo)[0]
        haar = detect_faces(photo, detector=HaarFaceDetector())[0]
        assert iou(mapped, haar) > 0.65 and mapped.width == pytest.approx(mapped.height)
        (mx, my), (hx, hy) = mapped.center, haar.center
        assert np.hypot(mx - hx, my - hy) < 0.06 * haar.width
        assert 0.8 < mapped.width / haar.width < 1.25


def test_haar_framing_of_raw_boxes(astronaut):
    raw = RetinaFaceDetector(framing="raw").detect(astronaut)[0]
    mapped = RetinaFaceDetector().detect(astronaut)[0]
    assert mapped.score == raw.score and np.array_equal(mapped.landmarks, raw.landmarks)
    again = haar_framing(raw)
    np.testing.assert_allclose(xyxy(again), xyxy(mapped), atol=1e-3)
    # Without landmarks the box alone places the square, close to where the landmarks do.
    boxed = haar_framing(FaceBox(raw.x0, raw.y0, raw.x1, raw.y1, raw.score))
    assert iou(boxed, mapped) > 0.9 and boxed.landmarks is None
    assert haar_framing_arrays(np.zeros((0, 4)), np.zeros((0, 5, 2))).shape == (0, 4)


def test_landmarks_follow_scaling_and_clipping(astronaut):
    box = detect_faces(astronaut)[0]
    np.testing.assert_allclose(box.scaled(2.0).landmarks, box.landmarks * 2.0)
    assert FaceBox(0, 0, 1, 1).scaled(2.0).landmarks is None
    # detect_faces clips boxes to the photo and keeps the landmarks: a face near the left edge.
    shifted = np.ascontiguousarray(astronaut[:, 170:])
    near_edge = detect_faces(shifted)[0]
    assert near_edge.x0 == 0 and near_edge.landmarks is not None


def test_big_photo_is_searched_downscaled(astronaut):
    small = RetinaFaceDetector().detect(astronaut)[0]
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BICUBIC))
    boxes = RetinaFaceDetector().detect(big)
    assert len(boxes) == 1
    np.testing.assert_allclose(xyxy(boxes[0]) / 4, xyxy(small), atol=3)
    np.testing.assert_allclose(boxes[0].landmarks / 4, small.landmarks, atol=3)


def test_several_faces_are_all_found(astronaut):
    tiled = np.tile(astronaut, (2, 2, 1))  # 1024 x 1024, four astronauts
    boxes = detect_faces(tiled)
    assert len(boxes) == 4
    centres = sorted((round(b.center[0] / 512), round(b.center[1] / 512)) for b in boxes)
    assert centres == [(0, 0), (0, 1), (1, 0), (1, 1)]

    face, _ = crop_face(astronaut, detect_faces(astronaut)[0], scale=2.0)
    canvas = np.full((700, 1000, 3), 200, np.uint8)
    places = [(20, 20, 300), (380, 40, 220), (650, 60, 160), (100, 420, 130), (500, 400, 110)]  # x, y, side
    for x, y, side in places:
        canvas[y:y + side, x:x + side] = np.asarray(Image.fromarray(face).resize((side, side)))
    boxes = detect_faces(canvas, min_size=24)
    assert len(boxes) == 5
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)  # largest first
    for box, (x, y, side) in zip(boxes, places):
        assert box.x0 < x + side / 2 < box.x1 and box.y0 < y + side / 2 < box.y1


def test_sideways_faces_are_left_out_unless_asked_for(astronaut):
    sideways = np.ascontiguousarray(np.rot90(astronaut))
    assert detect_faces(sideways) == []  # the editor's models know upright faces only
    found = RetinaFaceDetector(max_roll=None).detect(sideways)
    assert len(found) == 1 and abs(roll_degrees(found[0].landmarks)[0]) > 60
    assert abs(roll_degrees(detect_faces(astronaut)[0].landmarks)[0]) < 15


def test_grayscale_and_rgba_inputs(astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    rgba = np.asarray(Image.fromarray(astronaut).convert("RGBA"))
    assert len(detect_faces(gray)) == 1 and len(detect_faces(rgba)) == 1


def test_threads_share_one_session(astronaut):
    detector = RetinaFaceDetector()
    expected = detector.detect(astronaut)
    results, errors = [], []

    def run():
        try:
            results.append(detector.detect(astronaut))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    for boxes in results:
        np.testing.assert_allclose(xyxy(boxes[0]), xyxy(expected[0]))


# --- errors ----------------------------------------------------------------------------------------------------------

def test_without_onnxruntime_the_error_says_what_to_do(monkeypatch, tmp_path, astronaut):
    model = tmp_path / MODEL_FILENAME
    model.write_bytes(DEFAULT_MODEL_PATH.read_bytes())  # a path no session was cached for
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime") as caught:
        RetinaFaceDetector(model).detect(astronaut)
    assert 'detector="haar"' in str(caught.value) and "--detector haar" in str(caught.value)
    assert isinstance(caught.value, ExpressionEditError) and isinstance(caught.value, ImportError)
    # The Haar cascade needs nothing more.
    assert len(detect_faces(astronaut, detector=HaarFaceDetector())) == 1


def test_missing_or_corrupt_model_names_the_file(tmp_path, astronaut):
    missing = tmp_path / "nowhere" / MODEL_FILENAME
    with pytest.raises(CheckpointError, match="missing") as caught:
        RetinaFaceDetector(missing).detect(astronaut)
    assert str(missing) in str(caught.value) and "haar" in str(caught.value)

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model" * 100)
    with pytest.raises(CheckpointError, match="corrupt") as caught:
        RetinaFaceDetector(corrupt).load()
    assert str(corrupt) in str(caught.value)

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(DEFAULT_MODEL_PATH.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match=str(truncated.name)):
        RetinaFaceDetector(truncated).detect(astronaut)


def test_the_editor_uses_its_models_folder_copy_and_reports_a_broken_one(tmp_path, astronaut):
    folder = tmp_path / "models" / "face_detector"
    folder.mkdir(parents=True)
    (folder / MODEL_FILENAME).write_bytes(b"\0" * 1000)
    editor = ExpressionEditor(models_dir=tmp_path / "models")
    assert editor.face_detector().model_path == folder / MODEL_FILENAME
    with pytest.raises(CheckpointError, match=MODEL_FILENAME):
        editor.detect_faces(astronaut)
    # A models folder without its own copy uses the committed one.
    assert ExpressionEditor(models_dir=tmp_path).face_detector().model_path == DEFAULT_MODEL_PATH
