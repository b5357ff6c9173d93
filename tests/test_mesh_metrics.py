"""Mesh-based edit measures on synthetic meshes and images: gain and cosine ignore head moves, the mouth opening is
read off the inner lips, sharpness falls when the mouth is blurred."""

import cv2
import numpy as np

from expr_models.evaluation.mesh_metrics import mesh_scores, motion_gain_cosine, mouth_region, mouth_sharpness
from expr_models.faces.mesh import eye_centres, eye_distance, inner_lip_gap
from expr_models.faces.mesh_motion import STABLE_POINTS
from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_OUTER

N = 468


def _mesh(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([300, 200], [520, 480], (N, 2))


def _turn(points: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


def _motion(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    motion = rng.normal(0, 6, (N, 2))
    motion[list(STABLE_POINTS)] = 0  # an expression leaves the stable points
    return motion


def test_gain_and_cosine_of_a_half_motion_under_a_head_move():
    source, motion = _mesh(), _motion()
    real = _turn(source + motion, 0.15, 1.2, [30, -10])  # the real photo: another head pose and distance
    edit = source + 0.5 * motion
    gain, cosine = motion_gain_cosine(source, edit, real)
    assert np.isclose(gain, 0.5, atol=1e-9) and np.isclose(cosine, 1.0, atol=1e-9)
    gain, cosine = motion_gain_cosine(source, _turn(source + 1.3 * motion, -0.1, 0.9, [5, 5]), real)
    assert np.isclose(gain, 1.3, atol=1e-9) and np.isclose(cosine, 1.0, atol=1e-9)


def test_an_unrelated_motion_has_a_small_cosine_and_no_motion_no_gain():
    source = _mesh()
    real = source + _motion(1)
    gain, cosine = motion_gain_cosine(source, source + _motion(2), real)
    assert abs(cosine) < 0.15 and abs(gain) < 0.15
    assert motion_gain_cosine(source, source.copy(), real) == (0.0, 0.0)
    assert np.isnan(motion_gain_cosine(source, real, source.copy())[0])


def test_the_mouth_opening_is_the_inner_lip_gap():
    source = _mesh()
    opened = source.copy()
    right, left = eye_centres(source)
    along = (left - right) / np.linalg.norm(left - right)
    down = np.array([-along[1], along[0]])  # across the mouth: perpendicular to the eyes' line
    opened[list(LIPS_INNER_LOWER[1:-1])] += 0.1 * eye_distance(source) * down
    scores = mesh_scores(source, opened, opened)
    assert np.isclose(scores["gap_edit"] - scores["gap_source"], 0.1, atol=1e-9)
    assert scores["gap_edit"] == scores["gap_real"] == inner_lip_gap(opened)
    assert np.isclose(scores["gain"], 1.0) and np.isclose(scores["cosine"], 1.0)


def test_mouth_sharpness_falls_when_the_mouth_is_blurred():
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8), (0, 0), 1.0)
    points = _mesh()
    assert mouth_sharpness(photo, photo.copy(), points, points) == 1.0
    blurred = photo.copy()
    rows, cols = mouth_region(points, photo.shape[:2])
    blurred[rows, cols] = cv2.GaussianBlur(photo, (0, 0), 1.5)[rows, cols]
    assert mouth_sharpness(photo, blurred, points, points) < 0.3
    assert mouth_sharpness(photo, photo.copy(), points, points, scale=0.5) == 1.0
    assert mouth_sharpness(photo, blurred, points, points, scale=0.5) < 0.6
    lips = points[list(LIPS_OUTER)]
    assert rows.start <= lips[:, 1].min() and cols.stop >= lips[:, 0].max()


def test_the_cheek_gain_sees_only_the_cheeks_and_lower_eyelids():
    from expr_models.evaluation.mesh_metrics import CHEEK_POINTS

    source, motion = _mesh(), _motion()
    real = source + motion
    mouth_only = source + np.where(np.isin(np.arange(N), CHEEK_POINTS)[:, None], 0.0, motion)
    scores = mesh_scores(source, mouth_only, real)
    assert abs(scores["cheek_gain"]) < 1e-9 and scores["gain"] > 0.5
    cheeks_half = source + np.where(np.isin(np.arange(N), CHEEK_POINTS)[:, None], 0.5 * motion, motion)
    assert np.isclose(mesh_scores(source, cheeks_half, real)["cheek_gain"], 0.5, atol=1e-9)
