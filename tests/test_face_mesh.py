"""The dense face mesh: the committed MediaPipe Face Mesh port (expr_models/models/face_mesh.py, checkpoints/face_mesh)
and its geometry (expr_models/faces/mesh.py). Photos: scikit-image's astronaut (an open smile) and matplotlib's Grace
Hopper (mouth closed, glasses), found by the committed RetinaFace."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from expr_models.detection import make_detector
from expr_models.errors import CheckpointError
from expr_models.face import FaceBox
from expr_models.faces import mesh
from expr_models.models.face_mesh import FaceMeshModel

pytest.importorskip("onnxruntime")  # the committed detector
pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "face_mesh"


@pytest.fixture(scope="module")
def model():
    return FaceMeshModel.from_pretrained(CHECKPOINT)


@pytest.fixture(scope="module")
def detector():
    return make_detector("retinaface")


def level_frame(box: FaceBox):
    """RetinaFace's landmarks, their eye distance and a function that maps photo points into a frame with the eyes
    level and the mouth corners' midpoint at the origin, in eye distances."""
    landmarks = np.asarray(box.landmarks, np.float64)
    along = landmarks[1] - landmarks[0]
    eye_distance = np.linalg.norm(along)
    cos, sin = along / eye_distance
    rotation = np.array([[cos, sin], [-sin, cos]])
    origin = landmarks[3:].mean(0)
    return landmarks, eye_distance, lambda points: (np.asarray(points)[..., :2] - origin) @ rotation.T / eye_distance


@pytest.mark.parametrize("photo_name", ["astronaut", "grace_hopper"])
def test_the_mesh_lands_on_the_face(photo_name, model, detector, request):
    photo = request.getfixturevalue(photo_name)
    box = detector.detect(photo)[0]
    points, presence = mesh.face_mesh(photo, box, model, return_presence=True)
    assert points.shape == (468, 3) and points.dtype == np.float32 and np.isfinite(points).all()
    assert presence > 0.99
    landmarks, eye_distance, level = level_frame(box)
    # Every lip point lies in the mouth region the five landmarks imply: between the corners (a little beyond them)
    # and from a quarter eye distance above their line to half of one below (an open smile reaches 0.35).
    corners = level(landmarks[3:])
    lips = level(points[list(mesh.LIPS_OUTER + mesh.LIPS_INNER)])
    assert (lips[:, 0] > corners[:, 0].min() - 0.15).all() and (lips[:, 0] < corners[:, 0].max() + 0.15).all()
    assert (lips[:, 1] > -0.25).all() and (lips[:, 1] < 0.5).all()
    # The mesh's mouth corners and eye centres sit on RetinaFace's (measured: within 0.06 and 0.093 eye distances;
    # the eye landmark is the pupil, the mesh's eye centre the contour's, which differ when the gaze is sideways).
    for mesh_corner, landmark in zip(mesh.MOUTH_CORNERS, landmarks[3:]):
        assert np.linalg.norm(points[mesh_corner, :2] - landmark) < 0.1 * eye_distance
    for centre, landmark in zip(mesh.eye_centres(points), landmarks[:2]):
        assert np.linalg.norm(centre - landmark) < 0.12 * eye_distance
    assert abs(mesh.eye_distance(points) / eye_distance - 1) < 0.15
    # z is depth in photo pixels: the nose tip nearer the camera (smaller z) than the face's outline (measured: by
    # about one eye distance).
    assert points[mesh.NOSE_TIP, 2] < points[list(mesh.FACE_OVAL), 2].mean() - 0.3 * eye_distance


def test_inner_lip_gap_tells_an_open_mouth_from_a_closed_one(model, detector, astronaut, grace_hopper):
    gaps = [mesh.inner_lip_gap(mesh.face_mesh(photo, detector.detect(photo)[0], model))
            for photo in (astronaut, grace_hopper)]
    assert gaps[0] > 0.08  # the astronaut smiles with her teeth showing (measured 0.13)
    assert 0 <= gaps[1] < 0.04  # Grace Hopper's lips are closed (measured 0.019)


@pytest.mark.parametrize("photo_name", ["astronaut", "grace_hopper"])
def test_a_rotated_photo_gives_the_rotated_mesh(photo_name, model, detector, request):
    photo = request.getfixturevalue(photo_name)
    upright = mesh.face_mesh(photo, detector.detect(photo)[0], model)
    height, width = photo.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0)
    turned_photo = cv2.warpAffine(photo, rotation, (width, height), flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REFLECT)
    turned = mesh.face_mesh(turned_photo, detector.detect(turned_photo)[0], model)
    expected = upright[:, :2] @ rotation[:, :2].T + rotation[:, 2]
    error = np.linalg.norm(turned[:, :2] - expected, axis=1) / mesh.eye_distance(upright)
    assert error.mean() < 0.03 and error.max() < 0.08  # measured 0.016-0.018 and 0.039-0.054
    # The check can tell: the upright mesh itself lies 0.7-1.5 eye distances from the turned one (measured).
    assert np.linalg.norm(upright[:, :2] - expected, axis=1).max() / mesh.eye_distance(upright) > 0.3


def test_batches_grayscale_and_boxes_without_landmarks(model, detector, astronaut, grace_hopper):
    boxes = [detector.detect(photo)[0] for photo in (astronaut, grace_hopper)]
    points, presence = mesh.face_mesh_batch([astronaut, grace_hopper], boxes, model, batch_size=1)
    assert points.shape == (2, 468, 3) and points.dtype == np.float32
    assert presence.shape == (2,) and presence.dtype == np.float32 and (presence > 0.99).all()
    assert np.allclose(points[1], mesh.face_mesh(grace_hopper, boxes[1], model), atol=1e-3)
    empty_points, empty_presence = mesh.face_mesh_batch([], [], model)
    assert empty_points.shape == (0, 468, 3) and empty_presence.shape == (0,)
    with pytest.raises(ValueError):
        mesh.face_mesh_batch([astronaut], boxes, model)
    scale = mesh.eye_distance(points[0])
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert np.linalg.norm(mesh.face_mesh(gray, boxes[0], model)[:, :2] - points[0][:, :2], axis=1).mean() < 0.03 * scale
    # A box alone (a 48x48 face crop has no landmarks): the crop is upright around the box, and refine re-centres it
    # (measured 0.010-0.019 eye distances from the landmark-placed mesh).
    bare = FaceBox(boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1)
    refined = mesh.face_mesh(astronaut, bare, model, refine=True)
    assert np.linalg.norm(refined[:, :2] - points[0][:, :2], axis=1).mean() < 0.05 * scale


def test_the_topology_is_meshs_own(model, detector, astronaut):
    assert len(mesh.TRIANGLES) == 852 and len(mesh.MOUTH_TRIANGLES) == 18 and len(mesh.EYE_TRIANGLES) == 28
    everything = np.array(mesh.TRIANGLES + mesh.MOUTH_TRIANGLES + mesh.EYE_TRIANGLES)
    assert everything.min() == 0 and everything.max() == 467 and len(np.unique(everything)) == 468
    for name, group in mesh.GROUPS.items():
        assert len(set(group)) == len(group), name
        assert all(0 <= index < 468 for index in group), name
    # One orientation throughout: on a frontal face nearly every triangle winds the same way (the others are where
    # the surface turns away, beside the nose and at the outline), and the filled holes all do.
    points = mesh.face_mesh(astronaut, detector.detect(astronaut)[0], model)[:, :2]
    a, b, c = (points[everything[:, i]] for i in range(3))
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    assert (cross[:852] > 0).mean() > 0.9 and (cross[852:] > 0).all()


def test_a_broken_checkpoint_raises_checkpoint_error(tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(CHECKPOINT, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        FaceMeshModel.from_pretrained(truncated)
    other = tmp_path / "other"
    shutil.copytree(CHECKPOINT, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace('"expr-face-mesh"', '"expr-sagan"'))
    with pytest.raises(CheckpointError):
        FaceMeshModel.from_pretrained(other)


def test_the_model_outputs_crop_pixels(model):
    with pytest.raises(ValueError):
        model.predict(np.zeros((1, 128, 128, 3), np.uint8))
    points, presence = model.predict(np.full((2, 192, 192, 3), 128, np.uint8))
    assert points.shape == (2, 468, 3) and points.dtype == np.float32 and presence.shape == (2,)
    assert (presence < 0.5).all()  # a flat grey crop holds no face


def test_the_accuracy_benchmark_skips_without_data_and_scores_templates(tmp_path, capsys, astronaut, model, detector):
    import face_mesh_accuracy as bench

    assert bench.main(["--data", str(tmp_path / "nowhere"), "--no-save", "--no-timing"]) == 0
    assert "SKIP" in capsys.readouterr().out
    # A WebMorph file whose matched points are the mesh's own scores 0; moving the mouth corners scores them alone.
    points = mesh.face_mesh(astronaut, detector.detect(astronaut)[0], model)
    template = np.zeros((189, 2))
    template[0], template[1] = mesh.eye_centres(points)
    for pairs in bench.MATCHES.values():
        for t, m in pairs.items():
            template[t] = points[m, :2]
    tem = tmp_path / "001_03.tem"
    tem.write_text("189\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in template) + "1\n0\n2\n0 0\n")
    read = bench.read_template(tem)
    assert read.shape == (189, 2) and np.allclose(read, template, atol=1e-3)
    assert all(row["mean"] < 1e-4 for row in bench.errors(read[None], points[None]).values())
    read[[87, 93], 0] += 0.1 * np.linalg.norm(read[1] - read[0])
    table = bench.errors(read[None], points[None])
    assert table["mouth corners"]["mean"] == pytest.approx(0.1, abs=1e-3)
    assert all(row["mean"] < 1e-4 for group, row in table.items() if group != "mouth corners")
