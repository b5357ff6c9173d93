"""The photo's grain for drawn regions (expr_models.faces.grain)."""

import numpy as np

from expr_models.faces.grain import detail, grain_spread, with_grain


def noisy_photo(spread: float, shape=(80, 120), seed: int = 1) -> np.ndarray:
    return 128.0 + np.random.default_rng(seed).normal(0.0, spread, shape).astype(np.float32)


def test_a_smooth_drawn_region_gets_the_photos_grain():
    photo = noisy_photo(5.0)
    drawn = np.full_like(photo, 100.0)
    inside = np.zeros(photo.shape, bool)
    inside[20:60, 30:90] = True
    result = with_grain(drawn, photo, inside, ~inside)
    assert abs(grain_spread(result, inside) / grain_spread(photo, ~inside) - 1.0) < 0.1
    assert abs(float(result[inside].mean()) - 100.0) < 0.5  # grain, not a shift in brightness
    assert np.array_equal(result, with_grain(drawn, photo, inside, ~inside))  # a fixed seed


def test_a_drawn_region_as_grainy_as_the_photo_is_left_alone():
    photo = noisy_photo(2.0)
    drawn = noisy_photo(4.0, seed=2)
    inside = np.ones(photo.shape, bool)
    assert with_grain(drawn, photo, inside, inside) is drawn


def test_the_spread_is_the_grains_not_the_edges():
    photo = noisy_photo(2.0)
    photo[:, 60:] += 80.0  # a lip's edge through the middle
    everywhere = np.ones(photo.shape, bool)
    assert float(np.std(detail(photo))) > 3.0  # a plain standard deviation takes the edge for grain
    assert abs(grain_spread(photo, everywhere) / grain_spread(noisy_photo(2.0), everywhere) - 1.0) < 0.1


def test_colour_regions_get_one_grain_in_every_channel():
    photo = np.repeat(noisy_photo(4.0)[..., None], 3, axis=2)
    drawn = np.full_like(photo, 90.0)
    inside = np.ones(photo.shape[:2], bool)
    result = with_grain(drawn, photo, inside, inside)
    assert np.array_equal(result[..., 0], result[..., 2]) and grain_spread(result, inside) > 3.0


def test_a_sliver_too_small_to_measure_gets_no_grain():
    photo = noisy_photo(5.0)
    drawn = np.full_like(photo, 100.0)
    sliver = np.zeros(photo.shape, bool)
    sliver[40, 50:55] = True  # five pixels of a barely parted mouth
    assert with_grain(drawn, photo, sliver, ~sliver) is drawn
    assert with_grain(drawn, photo, np.zeros(photo.shape, bool), ~sliver) is drawn  # nothing drawn: nothing added
