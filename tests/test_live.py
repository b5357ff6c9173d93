"""Live mode's tracking core (expr_models/faces/live.py): detection kept while the face stays put, redone when it moves,
the edit confined to the face, and editor.edit(read_expressions=False)."""

import numpy as np
import pytest
import torch
from PIL import Image

from expr_models.faces.detection import RetinaFaceDetector
from expr_models.faces.live import LiveTracker, as_rgb_frame
from expr_models.pipeline import ExpressionEditor


class CountingDetector:
    def __init__(self):
        self.inner = RetinaFaceDetector()
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return self.inner.detect(image)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from expr_models import CycleGANConfig, CycleGANModel, ExpressionClassifier, ExpressionClassifierConfig

    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    CycleGANModel(CycleGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                                 with_discriminators=False)).save_pretrained(root / "cyclegan")
    ExpressionClassifier(ExpressionClassifierConfig(resolution=32, widths=(4, 8))).save_pretrained(root / "classifier")
    return root


def webcam_frame(shift: int = 0, noise_seed: int | None = None) -> np.ndarray:
    """A 640 x 480 frame: the astronaut's face on a smooth background, moved ``shift`` pixels to the right, with a
    little sensor noise."""
    from skimage import data

    yy, xx = np.mgrid[0:480, 0:640]
    frame = np.repeat((90 + 60 * xx / 640 + 30 * yy / 480)[..., None], 3, axis=-1).astype(np.uint8)
    face = np.asarray(Image.fromarray(data.astronaut()).resize((360, 360)))
    frame[60:420, 100 + shift:460 + shift] = face
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-2, 3, frame.shape)
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frame


def test_a_still_face_is_detected_once_and_a_moved_one_again(models_dir):
    detector = CountingDetector()
    tracker = LiveTracker(ExpressionEditor(models_dir, detector=detector), redetect_every=100)
    frames = [tracker.edit(webcam_frame(noise_seed=seed)) for seed in range(6)]
    assert detector.calls == 1 and frames[0].detected and not any(f.detected for f in frames[1:])
    assert all(f.faces == 1 for f in frames)

    moved = tracker.edit(webcam_frame(shift=60, noise_seed=7))
    assert moved.detected and detector.calls == 2 and moved.faces == 1

    tracker.reset()
    assert tracker.edit(webcam_frame(shift=60)).detected and detector.calls == 3


def test_detection_runs_every_n_frames_and_on_a_new_frame_size(models_dir):
    detector = CountingDetector()
    tracker = LiveTracker(ExpressionEditor(models_dir, detector=detector), redetect_every=3)
    for seed in range(7):
        tracker.edit(webcam_frame(noise_seed=seed))
    assert detector.calls == 3  # frames 1, 4 and 7
    tracker.edit(webcam_frame()[:400, :600])
    assert detector.calls == 4


def test_the_face_changes_and_the_background_stays_byte_identical(models_dir):
    tracker = LiveTracker(ExpressionEditor(models_dir))
    frame = webcam_frame(noise_seed=1)
    for _ in range(3):  # a detected frame, then tracked ones
        result = tracker.edit(frame, method="cyclegan", target="happy")
        difference = np.abs(result.pixels.astype(int) - frame).sum(axis=-1)
        assert result.pixels.shape == frame.shape and result.faces == 1
        assert difference[110:180, 225:295].mean() > 5  # the face (RetinaFace's box: x 218-299, y 98-179)
        outside = np.ones(frame.shape[:2], bool)
        outside[60:230, 180:340] = False  # the face's crop square and a margin
        assert (difference[outside] == 0).all()
        assert set(result.timings) >= {"edit"}


def test_a_frame_without_a_face_comes_back_unchanged(models_dir):
    tracker = LiveTracker(ExpressionEditor(models_dir))
    empty = np.full((480, 640, 3), 128, np.uint8)
    result = tracker.edit(empty)
    assert result.faces == 0 and np.array_equal(result.pixels, empty)
    assert tracker.edit(empty).detected  # no face last time: look again


def test_frames_of_any_channel_layout():
    grey = np.zeros((4, 5), np.uint8)
    assert as_rgb_frame(grey).shape == (4, 5, 3)
    assert as_rgb_frame(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        as_rgb_frame(np.zeros((4, 5, 2), np.uint8))


def test_edit_without_readings_skips_the_classifier(models_dir):
    editor = ExpressionEditor(models_dir)
    frame = webcam_frame()
    with_readings = editor.edit(frame, "cyclegan", "happy")
    calls = []
    classifier = editor.model("classifier")
    hook = classifier.register_forward_hook(lambda *args: calls.append(1))
    try:
        without = editor.edit(frame, "cyclegan", "happy", read_expressions=False)
    finally:
        hook.remove()
    assert not calls
    assert with_readings.faces[0].reading_before and without.faces[0].reading_before is None
    assert without.faces[0].reading_after is None
    assert np.array_equal(np.asarray(without.image), np.asarray(with_readings.image))


class CountingMesh:
    """The committed face mesh, counting the crops it reads."""

    def __init__(self, model):
        self.model, self.crops = model, 0

    def predict(self, crops):
        self.crops += len(crops)
        return self.model.predict(crops)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def mesh_tracker_editor():
    from pathlib import Path

    from expr_models.models.face_mesh import FaceMeshModel

    committed = Path(__file__).resolve().parents[1] / "checkpoints"
    counting = CountingMesh(FaceMeshModel.from_pretrained(committed / "face_mesh"))
    return ExpressionEditor(committed, models={"face_mesh": counting}, num_threads=1), counting


def test_the_face_mesh_follows_the_last_frame_and_reads_each_frame_once(mesh_tracker_editor):
    editor, mesh = mesh_tracker_editor
    tracker = LiveTracker(editor, redetect_every=100)
    mesh.crops = 0
    first = tracker.edit(webcam_frame(noise_seed=0), "cyclegan", "happy")
    assert first.detected and first.faces == 1 and mesh.crops == 2  # from the landmarks, then around that mesh
    (box,) = tracker._boxes
    assert box.mesh_roi is not None and box.x0 <= box.mesh_roi[0][0] < box.x1

    mesh.crops = 0
    follows = [tracker.edit(webcam_frame(noise_seed=seed), "cyclegan", "happy") for seed in (1, 2, 3)]
    assert not any(frame.detected for frame in follows) and mesh.crops == 3  # one crop per frame

    # The tracked mesh is the two-pass one, within a tenth of a pixel or so (the face is still).
    photo = webcam_frame(noise_seed=3)
    from expr_models.faces.mesh import face_mesh

    untracked = face_mesh(photo, replace_roi(box, None), mesh.model, refine=True)
    tracked = face_mesh(photo, tracker._boxes[0], mesh.model, refine=True)
    assert np.abs(tracked[:, :2] - untracked[:, :2]).max() < 0.5

    plain = tracker.edit(webcam_frame(noise_seed=5), "average", "happy")  # reads no mesh: nothing left to follow
    assert plain.faces == 1 and not plain.detected and tracker._boxes[0].mesh_roi is None

    tracker.edit(webcam_frame(noise_seed=6), "cyclegan", "happy")
    moved = tracker.edit(webcam_frame(shift=60, noise_seed=4), "cyclegan", "happy")
    assert moved.detected  # a new detection: its box is read from its landmarks again, then tracked
    assert tracker._boxes[0].mesh_roi is not None and tracker._boxes[0].mesh_roi[0][0] > box.mesh_roi[0][0] + 40


def replace_roi(box, roi):
    from dataclasses import replace

    return replace(box, mesh_roi=roi)
