"""The shape of the mouth the ``mouth_open`` control opens: does the lower lip move as a whole, or is it stretched?

    python benchmarks/mouth_open_shape.py                                   # the committed checkpoints/mesh_motion
    python benchmarks/mouth_open_shape.py checkpoints/mesh_motion runs/old_mesh_motion    # several, side by side

On the model's own mean mesh (eye distance 1) moved by ``mouth_open`` = +1, which parts the inner lips 0.3 eye
distances: how far the mouth corners drop against the middle of the lower lip; the lower lip's thickness at its
middle, opened over closed; the inner lower lip's slope beside each corner (the drop of the point next to the corner
less the corner's, over the middle's drop); and how much the lower lip's mesh triangles (those inside the lower lip,
between its outer and inner contours) grow in area, median and most. A lip whose triangles grow many times over is
the warp stretching a few pixels of lip into streaks. The same growth for a smile opened at +1 (a laugh), as the model
moves the lips and after the editor's rules (``methods.mesh.target_rules``), which keep an opened mouth's lips as
bands. No data needed; the JSON holds numbers only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

import bench_utils as bench

from expr_models.faces.mesh import inner_lip_gap
from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_OUTER_LOWER, MOUTH_CORNERS, TRIANGLES
from expr_models.methods.mesh import target_rules
from expr_models.models.mesh_motion import MeshMotionModel


def lower_lip_triangles(points: np.ndarray) -> np.ndarray:
    """The mesh triangles whose corners all lie in the lower lip (between its outer and inner contours)."""
    contour = points[list(LIPS_OUTER_LOWER) + list(LIPS_INNER_LOWER[::-1]), :2].astype(np.float32).reshape(-1, 1, 2)
    inside = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -1e-3 for x, y in points[:, :2]])
    triangles = np.asarray(TRIANGLES)
    return triangles[inside[triangles].all(1)]


def areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k], :2] for k in range(3))
    return 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])


def shape(folder: Path) -> dict:
    model = MeshMotionModel.from_pretrained(folder)
    closed = model.mean_mesh.detach().numpy().astype(np.float64)
    opened = model.target_points(closed, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    drop = opened[:, 1] - closed[:, 1]
    middle = drop[LIPS_INNER_LOWER[5]]
    thickness = lambda p: p[LIPS_OUTER_LOWER[5], 1] - p[LIPS_INNER_LOWER[5], 1]  # noqa: E731
    slopes = [drop[LIPS_INNER_LOWER[1]] - drop[LIPS_INNER_LOWER[0]],
              drop[LIPS_INNER_LOWER[-2]] - drop[LIPS_INNER_LOWER[-1]]]
    triangles = lower_lip_triangles(closed)
    growth = areas(opened, triangles) / areas(closed, triangles)
    return {"checkpoint": str(folder), "parting": round(inner_lip_gap(opened) - inner_lip_gap(closed), 3),
            "corner_drop_over_middle": round(float(drop[list(MOUTH_CORNERS)].mean() / middle), 3),
            "lower_lip_thickness_ratio": round(float(thickness(opened) / thickness(closed)), 3),
            "slope_beside_corner_over_middle": round(float(np.mean(slopes) / middle), 3),
            "lower_lip_triangles": len(triangles),
            "area_growth_median": round(float(np.median(growth)), 2), "area_growth_max": round(float(growth.max()), 2),
            **laugh_growth(model, closed, triangles)}


def laugh_growth(model: MeshMotionModel, closed: np.ndarray, triangles: np.ndarray) -> dict:
    """The lower lip's triangles' growth in area (median, most) for a smile with ``mouth_open`` +1, as the model
    moves them and after the editor's rules (``methods.mesh.target_rules``: the lips kept as bands)."""
    opened = model.target_points(closed, "neutral", "happy", 1.0, {"mouth_open": 1.0})
    ruled = target_rules(closed, opened, "happy", {"mouth_open": 1.0})
    out = {}
    for name, points in (("laugh", opened), ("laugh_with_rules", ruled)):
        growth = areas(points, triangles) / areas(closed, triangles)
        out[f"{name}_area_growth_median"] = round(float(np.median(growth)), 2)
        out[f"{name}_area_growth_max"] = round(float(growth.max()), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, default=[bench.REPO_ROOT / "checkpoints" / "mesh_motion"])
    parser.add_argument("--out", type=Path,
                        default=bench.REPO_ROOT / "benchmarks" / "results" / "mouth_open_shape.json")
    args = parser.parse_args()
    rows = [shape(folder) for folder in args.folders]
    for row in rows:
        print(json.dumps(row))
    args.out.write_text(json.dumps({"machine": bench.machine(), "shapes": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
