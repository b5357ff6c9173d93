"""The paired realism ratio: is the edited mouth closer to the same person's real expression than the unedited one?

    ratio = paired_realism_ratio(input_photo, edited_photo, real_target_photo, face_box,
                                 input_points=points, target_points=real_points)["ratio"]
    median_ratio([...])                                 # what the tables report, over held-out subjects

For one person photographed in the source expression (``input``) and in the target expression (``real target``),
and an edit of the input towards the target:
1. the real target is aligned to the input on the upper face (eyes, brows, forehead barely move with the expression):
   a similarity from the two photos' eye landmarks when given, then refined by ECC (Euclidean) on the upper face;
2. the region compared is the mouth: 25-75% of the face box's width, 58-95% of its height;
3. the photos are compared in grey, Gaussian-blurred with sigma 2 px per 200 px of face box width;
4. error = mean absolute grey difference there; ratio = error(edit, real target) / error(input, real target).
Below 1: the edit moved the mouth towards the real one; 0: it matches it; 1: no better than leaving the face alone;
above 1: further away than the unedited photo.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..faces.alignment import invert_affine, similarity_transform

MOUTH_COLUMNS = (0.25, 0.75)
MOUTH_ROWS = (0.58, 0.95)
# The upper face that aligns the two photos: the box's top 45% (forehead, brows, eyes), its middle 80% across.
UPPER_ROWS = (0.0, 0.45)
UPPER_COLUMNS = (0.1, 0.9)
BLUR_SIGMA_PER_PIXEL = 2.0 / 200.0


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32)


def _region(box: Sequence[float], columns: tuple[float, float], rows: tuple[float, float],
            shape: tuple[int, int]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    width, height = x1 - x0, y1 - y0
    left, right = int(round(x0 + columns[0] * width)), int(round(x0 + columns[1] * width))
    top, bottom = int(round(y0 + rows[0] * height)), int(round(y0 + rows[1] * height))
    top, left = max(0, top), max(0, left)
    bottom, right = min(shape[0], bottom), min(shape[1], right)
    if bottom <= top or right <= left:
        raise ValueError(f"the face box {tuple(box)} leaves no region inside the {shape[1]}x{shape[0]} photo")
    return slice(top, bottom), slice(left, right)


def mouth_region(box: Sequence[float], shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the mouth region of ``box`` (x0, y0, x1, y1) in a photo of ``shape`` (height, width)."""
    return _region(box, MOUTH_COLUMNS, MOUTH_ROWS, shape)


def blur_sigma(box: Sequence[float]) -> float:
    return BLUR_SIGMA_PER_PIXEL * (float(box[2]) - float(box[0]))


def align_upper_face(real: np.ndarray, reference: np.ndarray, box: Sequence[float],
                     real_points: np.ndarray | None = None, reference_points: np.ndarray | None = None) -> np.ndarray:
    """``real`` (a photo of the same person as ``reference``, same size or not) warped onto ``reference`` so that
    their upper faces coincide; grey float32 of ``reference``'s size. ``box`` is the face in ``reference``;
    ``*_points`` are five (or two: the eyes first) landmarks of each photo, used to start the fit."""
    real_grey, reference_grey = _grey(real), _grey(reference)
    height, width = reference_grey.shape
    matrix = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    if real_points is not None and reference_points is not None:
        matrix = similarity_transform(np.asarray(real_points)[:2], np.asarray(reference_points)[:2])
    sigma = max(blur_sigma(box), 0.5)
    start = cv2.warpAffine(real_grey, matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    rows, columns = _region(box, UPPER_COLUMNS, UPPER_ROWS, (height, width))
    mask = np.zeros((height, width), np.uint8)
    mask[rows, columns] = 1
    # ECC refines what the landmarks left (their noise, or no landmarks at all) on the blurred upper face.
    refine = np.eye(2, 3, dtype=np.float32)
    try:
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        _, refine = cv2.findTransformECC(cv2.GaussianBlur(reference_grey, (0, 0), sigma),
                                         cv2.GaussianBlur(start, (0, 0), sigma), refine, cv2.MOTION_EUCLIDEAN,
                                         criteria, mask, 5)
    except cv2.error:
        refine = np.eye(2, 3, dtype=np.float32)  # ECC did not converge: keep the landmarks' fit
    # ECC's warp maps reference pixels to ``start`` pixels, and ``matrix`` real pixels to ``start`` pixels: compose
    # them into one map from reference to real pixels, so the real photo is resampled once.
    reference_to_real = _compose(invert_affine(matrix), refine.astype(np.float64))
    return cv2.warpAffine(real_grey, reference_to_real, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer(inner(p))`` for two 2x3 affine matrices."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def paired_error(a: np.ndarray, b: np.ndarray, box: Sequence[float]) -> float:
    """Mean absolute grey difference (0-255) of two aligned photos in the mouth region of ``box``, blurred."""
    a, b = _grey(a), _grey(b)
    sigma = blur_sigma(box)
    if sigma > 0:
        a, b = cv2.GaussianBlur(a, (0, 0), sigma), cv2.GaussianBlur(b, (0, 0), sigma)
    rows, columns = mouth_region(box, a.shape)
    return float(np.abs(a[rows, columns] - b[rows, columns]).mean())


def paired_realism_ratio(input_photo: np.ndarray, edited_photo: np.ndarray, real_target: np.ndarray,
                         box: Sequence[float], input_points: np.ndarray | None = None,
                         target_points: np.ndarray | None = None) -> dict[str, float]:
    """The ratio for one person: ``{"ratio", "edited_error", "input_error"}``. ``box`` (x0, y0, x1, y1) is the face
    in ``input_photo`` (the edit has the input's geometry); ``*_points`` help align the real target (optional)."""
    if np.asarray(edited_photo).shape[:2] != np.asarray(input_photo).shape[:2]:
        raise ValueError("the edited photo must have the input photo's size")
    real = align_upper_face(real_target, input_photo, box, target_points, input_points)
    edited_error = paired_error(edited_photo, real, box)
    input_error = paired_error(input_photo, real, box)
    ratio = edited_error / input_error if input_error > 0 else (0.0 if edited_error == 0 else float("inf"))
    return {"ratio": ratio, "edited_error": edited_error, "input_error": input_error}


def median_ratio(ratios: Sequence[float]) -> float:
    """The median over subjects (NaN for none)."""
    return float(np.median(np.asarray(ratios, np.float64))) if len(ratios) else float("nan")
