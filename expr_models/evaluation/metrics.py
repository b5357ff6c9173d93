"""Small, pure metrics for expression editing. ``expr_models.evaluation`` puts them together.

Conventions: image tensors are ``N x C x H x W`` in [-1, 1] (as everywhere in ``expr_models``); arrays for the
whole-photo checks are uint8 ``H x W [x C]``. Every function returns plain Python numbers (or dicts of them), so its
result can go straight into JSON.

- distances: :func:`l1`, :func:`ssim`, :func:`l1_scales`, :func:`cycle_reconstruction_l1`;
- regions: :func:`upper_face`, :func:`lower_face` of an aligned crop;
- the paste-back check: :func:`changed_pixels_outside_mask`;
- the expression judge: :func:`predict`, :func:`success_rate`, :func:`accuracy`, :func:`per_class_recall`;
- distribution distance: :func:`classifier_features`, :func:`polynomial_kernel`, :func:`mmd2_unbiased`,
  :func:`kernel_inception_distance`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch import nn

# In an aligned crop (expr_models.faces.geometry framing) the eyes, brows and forehead fill the top ~45% of the rows;
# the mouth starts lower. A mouth edit should leave this band alone.
UPPER_FACE_FRACTION = 0.45

# ITU-R BT.601 luma weights, the same as expr_models.faces.processing.rgb_to_ycbcr.
_LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------------------------------------------------------------
# Regions of an aligned face crop
# ---------------------------------------------------------------------------------------------------------------------

def upper_face(images: torch.Tensor, fraction: float = UPPER_FACE_FRACTION) -> torch.Tensor:
    """The top ``fraction`` of the rows of aligned crops (``... x H x W``): eyes, brows and forehead."""
    rows = max(1, int(round(images.shape[-2] * fraction)))
    return images[..., :rows, :]


def lower_face(images: torch.Tensor, fraction: float = UPPER_FACE_FRACTION) -> torch.Tensor:
    """The rows below :func:`upper_face`: nose, mouth and chin, where an expression edit is expected."""
    rows = max(1, int(round(images.shape[-2] * fraction)))
    return images[..., rows:, :]


# ---------------------------------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------------------------------

def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference over all pixels (on whatever scale the inputs are, [-1, 1] for model tensors)."""
    if a.shape != b.shape:
        raise ValueError(f"Shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().mean())


def l1_scales(l1_on_model_scale: float) -> dict[str, float]:
    """One L1 on [-1, 1] tensors restated on the [0, 1] and per-pixel [0, 255] scales.

    The scales are linear: [-1, 1] spans 2 units, [0, 1] one, [0, 255] 255. So L1 on [0, 1] is half the model-scale
    value and L1 on [0, 255] is 127.5 times it (computed on float pixels, before any rounding to uint8).
    """
    value = float(l1_on_model_scale)
    return {"[-1,1]": value, "[0,1]": value / 2.0, "[0,255]": value * 127.5}


def cycle_reconstruction_l1(images: torch.Tensor, reconstructed: torch.Tensor) -> dict[str, float]:
    """CycleGAN's cycle error ``mean |x - F(G(x))|`` on [-1, 1] tensors, with its [0, 1] and [0, 255] restatements."""
    return l1_scales(l1(images, reconstructed))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> float:
    """Mean SSIM (scikit-image, Gaussian-free 7x7 window as in its defaults) over a batch of images.

    ``a``/``b``: ``N x C x H x W`` (or ``C x H x W``) on one scale; ``data_range`` is that scale's width (2 for
    [-1, 1] model tensors, 255 for uint8). Identical images give 1. The window shrinks (odd, >= 3) for images
    smaller than 7 pixels on a side.
    """
    if a.shape != b.shape:
        raise ValueError(f"Shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    height, width = a.shape[-2:]
    win_size = min(7, height, width)
    win_size -= 1 - win_size % 2  # odd
    if win_size < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {height}x{width}")
    a = a.detach().double().cpu().numpy()
    b = b.detach().double().cpu().numpy()
    scores = [structural_similarity(x, y, data_range=data_range, channel_axis=0, win_size=win_size)
              for x, y in zip(a, b)]
    return float(np.mean(scores))


# ---------------------------------------------------------------------------------------------------------------------
# Whole photos through paste-back
# ---------------------------------------------------------------------------------------------------------------------

def changed_pixels_outside_mask(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    """How many pixels outside the blend mask the edit changed. The pipeline promises 0.

    ``original``/``edited``: uint8 ``H x W`` or ``H x W x C`` of one size; ``mask``: ``H x W``, 0 where the photo must
    be kept (any value > 0 counts as inside). A pixel counts as changed when any of its channels differs. Returns
    ``changed`` and ``outside`` (the number of pixels outside the mask).
    """
    original, edited, mask = np.asarray(original), np.asarray(edited), np.asarray(mask)
    if original.shape != edited.shape:
        raise ValueError(f"Shapes differ: {original.shape} vs {edited.shape}")
    if mask.shape != original.shape[:2]:
        raise ValueError(f"The mask is {mask.shape}, the photo {original.shape[:2]}")
    differs = original != edited
    if differs.ndim == 3:
        differs = differs.any(axis=-1)
    outside = mask <= 0
    return {"changed": int((differs & outside).sum()), "outside": int(outside.sum())}


# ---------------------------------------------------------------------------------------------------------------------
# The expression classifier as a judge
# ---------------------------------------------------------------------------------------------------------------------

def match_input(images: torch.Tensor, resolution: int | None, channels: int | None) -> torch.Tensor:
    """Resize ``N x C x H x W`` images to ``resolution`` and convert to ``channels`` (1 = BT.601 luma, 3 = gray
    repeated), so crops made for one model can be read by another."""
    if channels is not None and images.shape[1] != channels:
        if channels == 1 and images.shape[1] == 3:
            weights = images.new_tensor(_LUMA)[None, :, None, None]
            images = (images * weights).sum(1, keepdim=True)
        elif channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        else:
            raise ValueError(f"Cannot convert {images.shape[1]} channels to {channels}")
    if resolution is not None and tuple(images.shape[-2:]) != (resolution, resolution):
        # Area averaging when shrinking (as the pipeline's cv2.INTER_AREA), bicubic when enlarging.
        shrinking = images.shape[-1] > resolution
        images = F.interpolate(images, size=(resolution, resolution), mode="area" if shrinking else "bicubic",
                               **({} if shrinking else {"align_corners": False}))
        images = images.clamp(-1, 1)
    return images.contiguous()


def _classifier_input(classifier: Any, images: torch.Tensor) -> torch.Tensor:
    config = getattr(classifier, "config", None)
    resolution = getattr(config, "resolution", None)
    channels = getattr(config, "in_channels", None)
    parameter = next(classifier.parameters(), None) if isinstance(classifier, nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    return match_input(images.float(), resolution, channels).to(device)


@torch.no_grad()
def logits(classifier: Any, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The classifier's logits for each image (``N x K``, CPU).

    ``classifier(pixel_values)`` must return an object with ``.logits`` (``ExpressionClassifier`` does) or a logits
    tensor. Inputs are matched to ``classifier.config.resolution``/``in_channels`` when it has them.
    """
    if isinstance(classifier, nn.Module):
        classifier.eval()
    batches = []
    for start in range(0, len(images), batch_size):
        output = classifier(_classifier_input(classifier, images[start:start + batch_size]))
        batches.append(getattr(output, "logits", output).float().cpu())
    return torch.cat(batches) if batches else torch.zeros(0, 0)


def predict(classifier: Any, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The classifier's label index for each image (``N`` long tensor, CPU); see :func:`logits`."""
    if not len(images):
        return torch.zeros(0, dtype=torch.long)
    return logits(classifier, images, batch_size).argmax(-1)


def success_rate(predictions: torch.Tensor | Sequence[int], target_index: int) -> float:
    """The fraction of edited faces the classifier reads as the target expression (``nan`` for no faces)."""
    predictions = torch.as_tensor(predictions)
    if predictions.numel() == 0:
        return float("nan")
    return float((predictions == target_index).double().mean())


def accuracy(predictions: torch.Tensor | Sequence[int], labels: torch.Tensor | Sequence[int]) -> float:
    """The fraction of faces whose predicted label equals the true one (``nan`` for no faces)."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"Shapes differ: {tuple(predictions.shape)} vs {tuple(labels.shape)}")
    if labels.numel() == 0:
        return float("nan")
    return float((predictions == labels).double().mean())


def per_class_recall(predictions: torch.Tensor | Sequence[int], labels: torch.Tensor | Sequence[int],
                     num_classes: int) -> list[float]:
    """For each class, the fraction of its real faces read as that class (``nan`` where the class has no faces).

    A class's recall on real faces is the ceiling for the success rate of edits to that class: the judge cannot
    recognise edited faces more reliably than real ones.
    """
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    recalls = []
    for index in range(num_classes):
        of_class = labels == index
        recalls.append(float((predictions[of_class] == index).double().mean()) if of_class.any() else float("nan"))
    return recalls


# ---------------------------------------------------------------------------------------------------------------------
# Kernel inception distance, on the expression classifier's features
# ---------------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def classifier_features(classifier: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The classifier's penultimate features (``ExpressionClassifier.embed``): the pooled vector its linear head
    reads. Returns ``N x D`` float64 on the CPU."""
    classifier.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = _classifier_input(classifier, images[start:start + batch_size])
        chunks.append(classifier.embed(pixels).flatten(1).double().cpu())
    if not chunks:
        return torch.zeros(0, classifier.head[-1].in_features, dtype=torch.float64)
    return torch.cat(chunks)


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> torch.Tensor:
    """``(gamma * x @ y.T + coef0) ** degree``; ``gamma`` defaults to ``1 / D`` (the KID paper's kernel)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * x @ y.T + coef0) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, **kernel_args) -> float:
    """The unbiased estimate of the squared MMD between samples ``x`` (``m x D``) and ``y`` (``n x D``).

    The within-set kernel means leave out the diagonal (``k(x_i, x_i)``), which is what makes the estimate unbiased:
    it is 0 in expectation for two samples of one distribution and can come out slightly negative.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"The unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx = polynomial_kernel(x, x, **kernel_args)
    k_yy = polynomial_kernel(y, y, **kernel_args)
    k_xy = polynomial_kernel(x, y, **kernel_args)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, n_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> dict[str, float | int]:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with a cubic polynomial kernel, averaged over random subsets.

    ``real``/``fake``: ``N x D`` features (here from :func:`classifier_features`). Each of ``n_subsets`` rounds draws
    ``min(subset_size, len(real), len(fake))`` rows from each set without replacement (seeded). Returns ``mean`` and
    ``std`` over the subsets, and the ``n_subsets``/``subset_size`` used. Lower is closer; 0 in expectation for one
    distribution. Small sets give noisy values: read ``std``. A set against itself comes out slightly *below* 0, because
    its subsets share rows and the cross term then includes some ``k(x_i, x_i)``.
    """
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 edited faces, got {len(real)} and {len(fake)}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_subsets):
        x = real[torch.randperm(len(real), generator=generator)[:size]]
        y = fake[torch.randperm(len(fake), generator=generator)[:size]]
        values.append(mmd2_unbiased(x, y))
    values = np.asarray(values)
    return {"mean": float(values.mean()), "std": float(values.std()), "n_subsets": int(n_subsets),
            "subset_size": int(size)}


# ---------------------------------------------------------------------------------------------------------------------
# Face detection (expr_models.evaluation.detection puts these together)
# ---------------------------------------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of ``N x 4`` against ``M x 4`` xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def match_detections(boxes: np.ndarray, scores: np.ndarray, faces: np.ndarray, ignored: np.ndarray | None = None,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """PASCAL VOC matching in one photo: ``(is_true_positive, is_ignored)``, one flag each per detection.

    Detections go in order of score; each takes the unmatched face it overlaps most at IoU >= ``iou_threshold`` (a
    true positive). One that takes none but overlaps an ``ignored`` box that much is left out of the count; the rest
    are false positives.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    faces = np.asarray(faces, np.float64).reshape(-1, 4)
    true_positive = np.zeros(len(boxes), bool)
    is_ignored = np.zeros(len(boxes), bool)
    overlaps = box_iou(boxes, faces)
    ignored_overlaps = box_iou(boxes, ignored if ignored is not None else np.zeros((0, 4)))
    taken = np.zeros(len(faces), bool)
    for index in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(taken, -1.0, overlaps[index]) if len(faces) else np.zeros(0)
        best = int(np.argmax(candidates)) if len(candidates) else -1
        if best >= 0 and candidates[best] >= iou_threshold:
            taken[best] = True
            true_positive[index] = True
        elif ignored_overlaps.shape[1] and ignored_overlaps[index].max() >= iou_threshold:
            is_ignored[index] = True
    return true_positive, is_ignored


def average_precision(scores: np.ndarray, true_positive: np.ndarray, n_faces: int) -> dict[str, float | int]:
    """Area under the interpolated precision-recall curve (VOC 2010+, all points), over detections of many photos.

    ``scores`` and ``true_positive`` hold one entry per (counted) detection; ``n_faces`` is the number of faces that
    should have been found. Also returns the final recall and precision (every detection kept).
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    true_positive = np.asarray(true_positive, bool).reshape(-1)
    if n_faces <= 0:
        raise ValueError("average precision needs at least one face to find")
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(true_positive[order])
    recall = hits / n_faces
    precision = hits / np.arange(1, len(order) + 1)
    # Interpolate: precision at recall r is the best precision at any recall >= r.
    envelope = np.maximum.accumulate(np.concatenate([precision, [0.0]])[::-1])[::-1]
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return {"ap": float((recall_steps * envelope[:-1]).sum()),
            "recall": float(recall[-1]) if len(recall) else 0.0,
            "precision": float(precision[-1]) if len(precision) else 0.0,
            "true_positives": int(hits[-1]) if len(hits) else 0, "detections": int(len(order))}
