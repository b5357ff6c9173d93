"""What a person sees of an edit, measured with face meshes (468 MediaPipe points):

- **mesh-motion gain and cosine**: the edit's motion (input mesh -> edited photo's mesh) against the real motion
  (input mesh -> the same person's real photo of the target expression), both in the canonical frame of
  ``expr_models.faces.mesh_motion`` with each mesh fitted in 3D (x, y and the mesh's depth) on its own stable points,
  so a head move or turn between the two photos does not count; compared in the frontal plane (x, y). Gain = the edit's motion projected on the real one over the real one's length (1: as far as
  the real expression; 0.5: half-way); cosine = the angle between the two (1: the same direction).
- **cheek gain**: the same gain on the cheek and lower-eyelid points only: a real smile lifts the cheeks and narrows
  the eyes, and an edit that only moves the mouth does not.
- **mouth opening**: the inner-lip gap over the eye distance (``expr_models.faces.mesh.inner_lip_gap``), of the
  edit and of the real photo.
- **mouth sharpness**: the Laplacian variance of the luminance in the mouth region, edit over input (1: as sharp).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.mesh import inner_lip_gap
from ..faces.mesh_motion import canonical_displacement, normalise
from ..faces.mesh_topology import LEFT_CHEEK, LEFT_EYE_LOWER, LIPS_OUTER, RIGHT_CHEEK, RIGHT_EYE_LOWER

# The points a smile lifts besides the mouth: the cheeks and the lower eyelids (eye corners left out: they stay).
CHEEK_POINTS = np.array(sorted(set(RIGHT_CHEEK + LEFT_CHEEK + RIGHT_EYE_LOWER[1:-1] + LEFT_EYE_LOWER[1:-1])))


def motion_gain_cosine(source: np.ndarray, edit: np.ndarray, real: np.ndarray,
                       points: np.ndarray | None = None) -> tuple[float, float]:
    """(gain, cosine) of the edit's mesh motion against the real motion; meshes 468 x 2+ in their photos' pixels
    (the edit's and the input's in the same photo frame; the real photo's anywhere). ``points``: only these indices.
    NaN where the real motion is zero."""
    # In 3D where every mesh has its depth; in the plane when one of them is only x, y (e.g. a warp's target points).
    dims = min(np.shape(mesh)[1] for mesh in (source, edit, real))
    source, edit, real = (np.asarray(mesh, np.float64)[:, :dims] for mesh in (source, edit, real))
    reference, _ = normalise(source)
    edit_motion = canonical_displacement(source, edit, reference)
    real_motion = canonical_displacement(source, real, reference)
    if points is not None:
        edit_motion, real_motion = edit_motion[points], real_motion[points]
    # In the frontal image plane of the canonical frame: the depth a mesh model guesses for a photo is not measured.
    e, r = edit_motion[:, :2].ravel(), real_motion[:, :2].ravel()
    real_length = float(np.linalg.norm(r))
    if real_length < 1e-12:
        return float("nan"), float("nan")
    edit_length = float(np.linalg.norm(e))
    gain = float(e @ r) / real_length ** 2
    cosine = float(e @ r) / (real_length * edit_length) if edit_length > 1e-12 else 0.0
    return gain, cosine


def mouth_region(points: np.ndarray, shape: tuple[int, int], margin: float = 0.2) -> tuple[slice, slice]:
    """The outer lips' bounding box, widened by ``margin`` of the mouth's width on every side, inside ``shape``."""
    lips = np.asarray(points, np.float64)[list(LIPS_OUTER), :2]
    low, high = lips.min(0), lips.max(0)
    pad = margin * (high[0] - low[0])
    x0, y0 = np.maximum(np.floor(low - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(high + pad).astype(int) + 1, [shape[1], shape[0]])
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def laplacian_variance(image: np.ndarray, region: tuple[slice, slice]) -> float:
    """Variance of the Laplacian of the luminance inside ``region`` (a photo's sharpness there)."""
    image = np.asarray(image)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 and image.shape[2] == 3 else image.squeeze()
    laplacian = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)  # whole image first: no edge effects at the box
    return float(laplacian[region].var())


def mouth_sharpness(input_image: np.ndarray, edit_image: np.ndarray, input_points: np.ndarray,
                    edit_points: np.ndarray, scale: float = 1.0) -> float:
    """Laplacian variance of the edit's mouth over the input's, each region from its own mesh. ``scale`` < 1: both
    photos shrunk first (area), which weighs the detail a viewer sees over pixel grain: on these photos a pure
    half-pixel cubic shift alone already gives 0.4-0.7 at full scale."""
    if scale != 1.0:
        shrink = [cv2.resize(np.asarray(image), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                  for image in (input_image, edit_image)]
        # pixel centres: x' = (x + 0.5) * scale - 0.5
        return mouth_sharpness(shrink[0], shrink[1], (np.asarray(input_points)[:, :2] + 0.5) * scale - 0.5,
                               (np.asarray(edit_points)[:, :2] + 0.5) * scale - 0.5)
    before = laplacian_variance(input_image, mouth_region(input_points, np.asarray(input_image).shape[:2]))
    after = laplacian_variance(edit_image, mouth_region(edit_points, np.asarray(edit_image).shape[:2]))
    return after / before if before > 0 else float("nan")


def mesh_scores(source: np.ndarray, edit: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Gain, cosine, the cheek gain and the two mouth openings for one edit (meshes as in
    :func:`motion_gain_cosine`)."""
    gain, cosine = motion_gain_cosine(source, edit, real)
    cheek_gain, _ = motion_gain_cosine(source, edit, real, CHEEK_POINTS)
    return {"gain": gain, "cosine": cosine, "cheek_gain": cheek_gain, "gap_edit": inner_lip_gap(edit),
            "gap_real": inner_lip_gap(real), "gap_source": inner_lip_gap(source)}


def photo_scores(source_image: np.ndarray, edit_image: np.ndarray, source: np.ndarray, edit: np.ndarray,
                 real: np.ndarray, real_image: np.ndarray | None = None) -> dict[str, float]:
    """Everything :func:`mesh_scores` gives, plus ``gap_ratio`` (the edit's mouth opening over the real photo's; NaN
    where the real gap is not positive) and ``sharpness`` (:func:`mouth_sharpness`), for one edit of a photo; with
    ``real_image``, ``sharpness_real``: the real photo's mouth over the input's, the reference for ``sharpness`` (a
    toothy smile's teeth are the sharpest thing in a face: its real neutral photo measures well under 1)."""
    scores = mesh_scores(source, edit, real)
    scores["gap_ratio"] = scores["gap_edit"] / scores["gap_real"] if scores["gap_real"] > 0 else float("nan")
    scores["sharpness"] = mouth_sharpness(source_image, edit_image, source, edit)
    if real_image is not None:
        scores["sharpness_real"] = mouth_sharpness(source_image, real_image, source, real)
    return scores
