"""The paired realism ratio on synthetic edits: perfect edit 0, no edit 1, head motion of the real photo removed."""

import numpy as np
import pytest
from skimage import data

from expr_models.evaluation.realism_ratio import align_upper_face, median_ratio, mouth_region, paired_realism_ratio

BOX = (150, 30, 330, 260)  # around the astronaut's face: x0, y0, x1, y1


def _smile(photo):
    """A 'real target': the astronaut with the mouth region changed (brightened and shifted up)."""
    target = photo.copy()
    rows, columns = mouth_region(BOX, photo.shape[:2])
    target[rows, columns] = np.clip(np.roll(photo, -6, axis=0)[rows, columns].astype(int) + 40, 0, 255)
    return target


def test_perfect_edit_is_zero_and_no_edit_is_one():
    photo = data.astronaut()
    real = _smile(photo)
    assert paired_realism_ratio(photo, real, real, BOX)["ratio"] == pytest.approx(0.0, abs=0.02)
    assert paired_realism_ratio(photo, photo, real, BOX)["ratio"] == pytest.approx(1.0)


def test_half_way_edit_is_between_and_overshoot_is_above_one():
    photo = data.astronaut().astype(np.float32)
    real = _smile(data.astronaut()).astype(np.float32)
    halfway = (0.5 * photo + 0.5 * real).round().astype(np.uint8)
    overshoot = np.clip(photo + 3.0 * (real - photo), 0, 255).astype(np.uint8)
    ratio = paired_realism_ratio(photo.astype(np.uint8), halfway, real.astype(np.uint8), BOX)["ratio"]
    assert 0.4 < ratio < 0.6
    assert paired_realism_ratio(photo.astype(np.uint8), overshoot, real.astype(np.uint8), BOX)["ratio"] > 1.2  # 2x as far without clipping


def test_a_shifted_real_photo_is_realigned():
    photo = data.astronaut()
    real = _smile(photo)
    moved = np.roll(real, (7, -5), axis=(0, 1))  # the head moved between the two photos
    assert paired_realism_ratio(photo, real, moved, BOX)["ratio"] < 0.05
    aligned = align_upper_face(moved, photo, BOX)
    grey = aligned[40:120, 170:310] - align_upper_face(real, photo, BOX)[40:120, 170:310]
    assert np.abs(grey).mean() < 0.5


def test_changes_outside_the_mouth_do_not_count():
    photo = data.astronaut()
    real = _smile(photo)
    forehead_edit = photo.copy()
    forehead_edit[40:80, 180:300] = 0
    assert paired_realism_ratio(photo, forehead_edit, real, BOX)["ratio"] == pytest.approx(1.0, abs=0.02)


def test_median_ratio():
    assert median_ratio([0.5, 2.0, 0.7]) == 0.7
    assert np.isnan(median_ratio([]))
