"""Mesh motion in a canonical frame: the same expression moves every face the same way once head pose and size are
taken out.

    canonical, frame = normalise(points)                 # 468 x 3: eyes level, eye distance 1, eyes' midpoint at 0
    canonical, frame = normalise(points, reference)      # fitted to a reference mesh on the stable points
    points_2d = denormalise(canonical, frame)[:, :2]
    motion = canonical_displacement(source_points, target_points, reference)   # 468 x 3, eye distances

The frame is a similarity (scale, rotation, shift) fitted by least squares on points an expression hardly moves: the
eye corners, the nose bridge and the temples. It works in 3D when the points carry the mesh's depth (MediaPipe's z,
on the scale of x): a head that turns or nods between two photos is then turned back, not taken for motion (in 2D a
turn of a few degrees squeezes one side of the face, which reads as an expression). With 2-column points it is the
plane similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh_topology import LEFT_EYE, RIGHT_EYE

# The eye corners, the nose bridge from between the eyes to above the tip, and the temples (the face oval at the
# eyes' height). Expressions move the lids, brows, cheeks, mouth and jaw, not these.
STABLE_POINTS = (33, 133, 362, 263, 168, 6, 197, 195, 127, 356, 162, 389, 234, 454)


@dataclass(frozen=True)
class Similarity:
    """``canonical = scale * rotation @ (photo - shift)``; ``rotation`` is D x D (D = 2 or 3: the points' columns)."""

    scale: float
    rotation: np.ndarray
    shift: np.ndarray

    @property
    def dims(self) -> int:
        return len(self.rotation)

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(points, np.float64)[:, :self.dims] - self.shift) @ self.rotation.T

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64)[:, :self.dims] @ self.rotation / self.scale + self.shift

    def vectors_to_photo(self, vectors: np.ndarray) -> np.ndarray:
        """Displacements (not positions): rotated and scaled, never shifted."""
        return np.asarray(vectors, np.float64) @ self.rotation / self.scale


def eye_frame(points: np.ndarray, dims: int | None = None) -> Similarity:
    """The frame with the eye centres at (-0.5, 0) and (0.5, 0), turned in the image plane only (depth kept).
    ``dims``: 2 or 3 (default: the points' columns, at most 3)."""
    points = np.asarray(points, np.float64)
    dims = dims or min(points.shape[1], 3)
    right, left = points[list(RIGHT_EYE), :dims].mean(0), points[list(LEFT_EYE), :dims].mean(0)
    along = (left - right)[:2]
    distance = float(np.linalg.norm(along))
    if distance < 1e-9:
        raise ValueError("the mesh's eyes coincide: not a face mesh")
    cos, sin = along / distance
    rotation = np.eye(dims)
    rotation[:2, :2] = [[cos, sin], [-sin, cos]]  # turns the eye line onto +x
    return Similarity(1.0 / distance, rotation, (right + left) / 2)


def fit_similarity(points: np.ndarray, reference: np.ndarray) -> Similarity:
    """The least-squares similarity taking ``points`` (K x D+) onto ``reference`` (K x D, D = 2 or 3), no reflection
    (Umeyama)."""
    y = np.asarray(reference, np.float64)
    x = np.asarray(points, np.float64)[:, :y.shape[1]]
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, singular, vt = np.linalg.svd(yc.T @ xc)
    sign = np.diag([1.0] * (y.shape[1] - 1) + [np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float((singular * np.diag(sign)).sum() / max((xc ** 2).sum(), 1e-12))
    # canonical = scale * R @ (x - mx) + my = scale * R @ (x - shift), shift = mx - R^T my / scale
    return Similarity(scale, rotation, mx - my @ rotation / scale)


def normalise(points: np.ndarray, reference: np.ndarray | None = None) -> tuple[np.ndarray, Similarity]:
    """``points`` (468 x 2+, photo pixels) in the canonical frame, and that frame, in as many dimensions as the
    reference has (without one: the points' own, at most 3). Without ``reference`` the eye frame; with one (468 x D,
    canonical) the similarity fitted on :data:`STABLE_POINTS` onto it."""
    points = np.asarray(points, np.float64)
    if reference is None:
        frame = eye_frame(points)
    else:
        stable = list(STABLE_POINTS)
        frame = fit_similarity(points[stable], np.asarray(reference, np.float64)[stable])
    return frame.to_canonical(points), frame


def denormalise(canonical: np.ndarray, frame: Similarity) -> np.ndarray:
    """Canonical points back to the photo's pixels (468 x D)."""
    return frame.to_photo(canonical)


def canonical_displacement(source: np.ndarray, target: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The motion from ``source`` to ``target`` (two meshes of one person, 468 x 2+ photo pixels) in the canonical
    frame (468 x D), each mesh normalised on its own stable points: a head move between the photos is no motion."""
    if reference is None:
        reference, _ = normalise(source)
    return normalise(target, reference)[0] - normalise(source, reference)[0]


def mean_mesh(meshes: list[np.ndarray], iterations: int = 3) -> np.ndarray:
    """The canonical mean of many faces' meshes: eye frame first, then refitted to the running mean (Procrustes)."""
    canonical = np.stack([normalise(mesh)[0] for mesh in meshes])
    mean = canonical.mean(0)
    for _ in range(iterations):
        canonical = np.stack([normalise(mesh, mean)[0] for mesh in meshes])
        mean = canonical.mean(0)
        mean = eye_frame(mean).to_canonical(mean)  # keep the eye distance 1 and the eyes level
    return mean
