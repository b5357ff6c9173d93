"""The metrics on synthetic inputs whose answers are known."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import expr_models as em
from expr_models.evaluation import metrics

torch.set_num_threads(2)


def images(seed=0, n=4, channels=1, size=32):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=generator) * 2 - 1


def test_identical_images_give_ssim_1_and_l1_0():
    x = images()
    assert metrics.ssim(x, x.clone()) == pytest.approx(1.0)
    assert metrics.l1(x, x.clone()) == 0.0
    assert metrics.ssim(images(channels=3), images(channels=3)) == pytest.approx(1.0)


def test_different_images_score_worse():
    x, y = images(0), images(1)
    assert metrics.ssim(x, y) < 0.2
    # Two independent uniforms on [-1, 1] differ by 2/3 on average.
    assert metrics.l1(x, y) == pytest.approx(2 / 3, abs=0.05)
    noisy = (x + 0.1 * images(2)).clamp(-1, 1)
    assert metrics.ssim(x, y) < metrics.ssim(x, noisy) < 1.0
    assert metrics.l1(x, noisy) < metrics.l1(x, y)


def test_ssim_handles_small_crops_and_refuses_tiny_ones():
    assert metrics.ssim(images(size=5), images(size=5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3x3"):
        metrics.ssim(images(size=2), images(size=2))


def test_l1_scales_and_cycle_error():
    assert metrics.l1_scales(0.2) == {"[-1,1]": 0.2, "[0,1]": 0.1, "[0,255]": pytest.approx(25.5)}
    x = torch.zeros(1, 1, 4, 4)
    cycle = metrics.cycle_reconstruction_l1(x, x + 0.5)
    assert cycle["[-1,1]"] == pytest.approx(0.5)
    assert cycle["[0,1]"] == pytest.approx(0.25)
    assert cycle["[0,255]"] == pytest.approx(63.75)


def test_face_regions_split_the_rows():
    x = images(size=20)
    top, bottom = metrics.upper_face(x), metrics.lower_face(x)
    assert top.shape[-2] == 9 and bottom.shape[-2] == 11  # 45% of 20 rows
    assert torch.equal(torch.cat([top, bottom], dim=-2), x)


def test_changed_pixels_outside_mask():
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), np.float32)
    mask[5:15, 10:20] = 0.5
    edited = photo.copy()
    edited[5:15, 10:20] = 255 - edited[5:15, 10:20]  # inside: allowed
    assert metrics.changed_pixels_outside_mask(photo, edited, mask) == {"changed": 0, "outside": 600 - 100}
    edited[0, 0, 1] ^= 1  # one channel of one pixel outside
    edited[19, 29] ^= 1
    assert metrics.changed_pixels_outside_mask(photo, edited, mask)["changed"] == 2


class FixedClassifier(nn.Module):
    """A fake judge: reads class 3 (happy) when the mean pixel is positive, else class 4 (neutral)."""

    def forward(self, pixel_values):
        bright = pixel_values.mean((1, 2, 3)) > 0
        logits = torch.zeros(len(pixel_values), 7)
        logits[bright, 3] = 1.0
        logits[~bright, 4] = 1.0
        return logits


def test_success_rate_on_a_fake_classifier():
    faces = torch.cat([torch.full((3, 1, 8, 8), 0.5), torch.full((1, 1, 8, 8), -0.5)])
    predictions = metrics.predict(FixedClassifier(), faces, batch_size=3)
    assert predictions.tolist() == [3, 3, 3, 4]
    assert metrics.success_rate(predictions, 3) == 0.75
    assert metrics.success_rate(predictions, 0) == 0.0
    assert math.isnan(metrics.success_rate([], 3))
    assert metrics.accuracy(predictions, [3, 3, 4, 4]) == 0.75
    recall = metrics.per_class_recall(predictions, [3, 3, 4, 4], 7)
    assert recall[3] == 1.0 and recall[4] == 0.5 and math.isnan(recall[0])


def test_predict_matches_the_classifier_input():
    torch.manual_seed(0)
    config = em.ExpressionClassifierConfig(resolution=16, widths=(4, 8))
    classifier = em.ExpressionClassifier(config).eval()
    crops = images(n=3, channels=3, size=40)  # RGB at another resolution: converted to 1 x 16 x 16
    labels = metrics.predict(classifier, crops)
    expected = classifier(metrics.match_input(crops, 16, 1)).logits.argmax(-1)
    assert labels.tolist() == expected.tolist()


def test_classifier_features_are_the_input_of_the_linear_head():
    torch.manual_seed(0)
    classifier = em.ExpressionClassifier(em.ExpressionClassifierConfig(resolution=16, widths=(4, 8))).eval()
    x = images(n=5, size=16)
    features = metrics.classifier_features(classifier, x, batch_size=2)
    assert features.shape == (5, 8)
    logits = classifier(x).logits.double()
    head = classifier.head[-1]
    torch.testing.assert_close(features @ head.weight.double().T + head.bias.double(), logits)


def test_mmd_and_kid():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(200, 16, generator=generator)
    same = torch.randn(200, 16, generator=generator)
    shifted = same + 1.0
    self_kid = metrics.kernel_inception_distance(real, real, n_subsets=20, subset_size=100)
    same_kid = metrics.kernel_inception_distance(real, same, n_subsets=20, subset_size=100)
    shifted_kid = metrics.kernel_inception_distance(real, shifted, n_subsets=20, subset_size=100)
    assert shifted_kid["mean"] > 1.0
    # ~0 next to a shift: one distribution gives ~0, the set against itself a little below (shared rows).
    assert abs(same_kid["mean"]) < 0.02 * shifted_kid["mean"]
    assert -0.02 * shifted_kid["mean"] < self_kid["mean"] <= 0.0
    assert shifted_kid["subset_size"] == 100 and shifted_kid["n_subsets"] == 20
    # Subsets shrink to the smaller set; fewer than two rows is refused.
    assert metrics.kernel_inception_distance(real, shifted[:7], n_subsets=3)["subset_size"] == 7
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kernel_inception_distance(real, shifted[:1])


def test_kid_is_seeded():
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 8, generator=generator), torch.randn(60, 8, generator=generator) + 0.3
    first = metrics.kernel_inception_distance(a, b, n_subsets=10, subset_size=20, seed=3)
    assert first == metrics.kernel_inception_distance(a, b, n_subsets=10, subset_size=20, seed=3)


def test_match_input_converts_channels_and_size():
    x = images(n=2, channels=3, size=32)
    gray = metrics.match_input(x, 16, 1)
    assert gray.shape == (2, 1, 16, 16) and gray.min() >= -1 and gray.max() <= 1
    assert metrics.match_input(gray, 24, 3).shape == (2, 3, 24, 24)
    assert torch.equal(metrics.match_input(x, None, None), x)


def test_average_precision_on_known_rankings():
    perfect = metrics.average_precision([0.9, 0.8], [True, True], n_faces=2)
    assert perfect["ap"] == 1.0 and perfect["recall"] == 1.0
    # A false positive ranked first: precision 0 then 1/2 at recall 1/2, so AP = 0.5 * 0.5.
    assert metrics.average_precision([0.9, 0.8], [False, True], n_faces=2)["ap"] == pytest.approx(0.25)
    # The same detections in the better order; a missed face caps recall.
    assert metrics.average_precision([0.8, 0.9], [False, True], n_faces=2)["ap"] == pytest.approx(0.5)
    assert metrics.average_precision([], [], n_faces=3)["ap"] == 0.0
    with pytest.raises(ValueError):
        metrics.average_precision([0.5], [True], n_faces=0)


def test_match_detections_counts_each_face_once_and_skips_ignored_ones():
    face, ignored = [[0, 0, 10, 10]], [[50, 50, 60, 60]]
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [100, 100, 110, 110]]
    true_positive, is_ignored = metrics.match_detections(boxes, [0.9, 0.8, 0.7, 0.6], face, ignored)
    assert true_positive.tolist() == [True, False, False, False]  # the duplicate is a false positive
    assert is_ignored.tolist() == [False, False, True, False]
    # The higher-scoring detection takes the face even when it is listed second.
    true_positive, _ = metrics.match_detections(boxes[:2], [0.1, 0.9], face)
    assert true_positive.tolist() == [False, True]
    assert metrics.box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
