"""The held-out mesh-motion runner's parts that need no data: reading the mesh helper's caches, summarising rows, the
contact sheet's layout; and one real held-out pair when ../shared/data is there."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from expr_models.evaluation.mesh_heldout import contact_sheet, load_mesh_caches, summarise
from expr_models.faces.geometry import FaceBox

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def test_mesh_caches_are_read_by_photo_path(tmp_path):
    points = np.random.default_rng(0).uniform(0, 100, (2, 468, 3)).astype(np.float32)
    landmarks = np.full((2, 5, 2), np.nan, np.float32)
    landmarks[0] = 7.0
    np.savez(tmp_path / "fei.npz", ids=np.array(["fei/1a.jpg", "fei/1b.jpg"]), points=points,
             boxes=np.array([[1, 2, 30, 40], [0, 0, 10, 10]], np.float32), landmarks=landmarks,
             presence=np.array([0.9, 0.2], np.float32))
    meshes = load_mesh_caches(tmp_path, tmp_path / "data")
    box, mesh = meshes[str((tmp_path / "data" / "fei" / "1a.jpg").resolve())]
    assert isinstance(box, FaceBox) and (box.x0, box.y1) == (1.0, 40.0) and np.allclose(box.landmarks, 7.0)
    assert np.array_equal(mesh, points[0].astype(np.float64))
    assert meshes[str((tmp_path / "data" / "fei" / "1b.jpg").resolve())] == (None, None)  # presence < 0.5


def test_summary_takes_medians_per_dataset_and_pair():
    scores = {"cosine": 0.9, "gap_source": 0.02, "gap_edit": 0.06, "gap_real": 0.15, "sharpness": 1.0,
              "sharpness_half": 1.0, "sharpness_warp": 1.0, "tracked": 0.7}
    rows = [{"dataset": "fei", "subject": str(i), "pair": "neutral->happy", "gain": gain, **scores}
            for i, gain in enumerate([0.2, 0.4, 0.9])]
    rows.append({"dataset": "fei", "subject": "9", "pair": "neutral->happy", "missing": True})
    summary = summarise(rows)["fei neutral->happy"]
    assert summary["pairs"] == 3 and summary["missing"] == 1
    assert summary["gain"] == 0.4 and np.isclose(summary["gain_mean"], 0.5)


def test_contact_sheet_keeps_full_resolution(tmp_path):
    class Pair:
        dataset, subject, pair = "london", "005", "neutral->happy"

    photo = np.full((300, 300, 3), 120, np.uint8)
    box = FaceBox(100, 100, 200, 200)
    contact_sheet([(Pair(), photo, photo, photo, box)], tmp_path / "sheet.jpg", footer="attribution")
    sheet = cv2.imread(str(tmp_path / "sheet.jpg"))
    assert sheet.shape[0] == 160 + 4 + 40 and sheet.shape[1] == 3 * (160 + 4)  # 1.6x the box, unscaled


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "london").is_dir(), reason="needs ../shared/data")
def test_one_held_out_london_smile_moves_towards_the_real_one():
    from expr_models.evaluation.mesh_heldout import PhotoMesher, evaluate_pairs
    from expr_models.models.face_mesh import FaceMeshModel
    from expr_models.models.mesh_motion import MeshMotionModel
    from expr_models.data.paired_faces import photo_pairs

    pair = [p for p in photo_pairs(DATA, "test", sources=("london",)) if p.source_expression == "neutral"][0]
    mesher = PhotoMesher(FaceMeshModel.from_pretrained("checkpoints/face_mesh").eval())
    rows, images = evaluate_pairs([pair], MeshMotionModel.from_pretrained("checkpoints/mesh_motion"), mesher,
                                  keep_images=1)
    assert rows[0]["cosine"] > 0.3 and rows[0]["gain"] > 0.2 and rows[0]["gap_edit"] > rows[0]["gap_source"]
    assert images[0][2].shape == images[0][1].shape and not np.array_equal(images[0][2], images[0][1])
