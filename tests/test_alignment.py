"""The aligned face frame: a known similarity is recovered, warp -> paste back returns the photo, resampling is sane."""

import numpy as np
import pytest
from skimage import data

from expr_models.faces.alignment import (TEMPLATE, align_face, align_to, apply_affine, frame_face_mask, invert_affine,
                                         native_size, paste_from_frame, resample_affine, similarity_transform,
                                         template_points, tem_points, warp_to_frame)


def _similarity(angle_degrees, scale, shift):
    angle = np.deg2rad(angle_degrees)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.concatenate([linear, np.asarray(shift, float)[:, None]], axis=1)


def _astronaut_points():
    # Face-shaped points (eyes, nose, mouth corners) around the astronaut's face; any such points serve these tests.
    return np.array([[228, 117], [294, 125], [264, 160], [236, 188], [282, 192]], np.float64)


def test_known_similarity_is_recovered():
    points = np.random.default_rng(0).uniform(0, 100, (5, 2))
    known = _similarity(23.0, 1.7, (12.5, -40.0))
    fitted = similarity_transform(points, apply_affine(known, points))
    np.testing.assert_allclose(fitted, known, atol=1e-9)


def test_inverse_is_exact_and_face_lands_on_template():
    face = align_face(template_points(200) @ _similarity(-15, 0.4, (0, 0))[:, :2].T + [300, 80], 200)
    np.testing.assert_allclose(apply_affine(face.inverse, apply_affine(face.matrix, face.points)), face.points,
                               atol=1e-9)
    np.testing.assert_allclose(face.to_frame(face.points), template_points(200), atol=1e-9)
    np.testing.assert_allclose(invert_affine(face.inverse), face.matrix, atol=1e-12)
    assert face.scale == pytest.approx(1 / 0.4)
    # A resized frame is the same alignment.
    np.testing.assert_allclose(face.resized(100).to_frame(face.points), template_points(100), atol=1e-9)


def test_warp_then_paste_back_unchanged_gives_the_photo_exactly():
    photo = data.astronaut()
    face = align_face(_astronaut_points(), native_size(_astronaut_points()))
    crop = warp_to_frame(photo, face)
    assert crop.shape == (face.size, face.size, 3)
    np.testing.assert_array_equal(paste_from_frame(photo, crop, face, original=crop), photo)


def test_paste_back_of_the_crop_itself_is_within_rounding_on_a_smooth_photo():
    y, x = np.mgrid[0:300, 0:400].astype(np.float64)
    photo = np.stack([100 + 80 * np.sin(x / 40) * np.cos(y / 50), 120 + 0.2 * x, 60 + 0.3 * y], axis=2)
    photo = np.rint(photo).astype(np.uint8)
    points = template_points(120) @ _similarity(10, 1.0, (0, 0))[:, :2].T + [140, 90]
    face = align_face(points, 240)  # an enlarging frame: paste-back shrinks it again
    pasted = paste_from_frame(photo, warp_to_frame(photo, face), face)
    inside = np.zeros(photo.shape[:2], bool)
    centre = face.to_photo(np.array([[120, 132]]))[0]
    inside[int(centre[1]) - 30:int(centre[1]) + 30, int(centre[0]) - 30:int(centre[0]) + 30] = True
    assert np.abs(pasted.astype(int) - photo)[inside].max() <= 2


def test_pixels_outside_the_mask_never_change():
    photo = data.astronaut()
    face = align_face(_astronaut_points(), 256)
    crop = warp_to_frame(photo, face)
    edited = np.full_like(crop, 255)
    pasted = paste_from_frame(photo, edited, face, original=crop)
    changed = np.any(pasted != photo, axis=2)
    assert changed.any()
    # Every changed pixel maps into the frame where the mask is positive.
    ys, xs = np.nonzero(changed)
    in_frame = face.to_frame(np.stack([xs, ys], 1))
    mask = frame_face_mask(256)
    u, v = np.clip(np.rint(in_frame).astype(int), 0, 255).T
    assert (mask[v, u] > 0).mean() > 0.99


def test_downscaling_is_antialiased():
    # A one-pixel checkerboard shrunk 8x must come out flat grey, not as moire.
    board = ((np.indices((800, 800)).sum(0) % 2) * 255).astype(np.uint8)
    small = resample_affine(board, np.array([[0.125, 0, 0], [0, 0.125, 0]]), (100, 100))
    assert abs(float(small[10:90, 10:90].mean()) - 127.5) < 3 and small[10:90, 10:90].std() < 3


def test_align_to_removes_head_motion():
    points = _astronaut_points()
    face = align_face(points, 256)
    moved = apply_affine(_similarity(5, 1.1, (20, -7)), points)
    other = align_to(moved, face)
    np.testing.assert_allclose(other.to_frame(moved), face.to_frame(points), atol=1e-8)


def test_template_is_upright_and_symmetric():
    assert TEMPLATE[0, 1] == TEMPLATE[1, 1] and TEMPLATE[0, 0] + TEMPLATE[1, 0] == pytest.approx(1.0)
    assert TEMPLATE[0, 1] < TEMPLATE[2, 1] < TEMPLATE[3, 1]


def test_tem_points(tmp_path):
    values = np.arange(189 * 2, dtype=float).reshape(189, 2)
    lines = ["189"] + [f"{x} {y}" for x, y in values] + ["0"]
    (tmp_path / "face.tem").write_text("\n".join(lines))
    five = tem_points(tmp_path / "face.tem")
    np.testing.assert_allclose(five[[0, 1, 3, 4]], values[[0, 1, 87, 93]])
    np.testing.assert_allclose(five[2], values[[54, 60, 55]].mean(0))
    (tmp_path / "bad.tem").write_text("3\n0 0\n1 1\n2 2\n")
    with pytest.raises(ValueError):
        tem_points(tmp_path / "bad.tem")
