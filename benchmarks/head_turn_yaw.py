"""What the editor's head-turn measure means in degrees: ``faces.mesh.head_turn`` on GENKI-4K photos against the yaw
their labels give, so that the mesh warp's limit (``methods.mesh.MAX_HEAD_TURN``) and the learned lower face's
(``faces.lower_face_frame.MAX_TURN``) can be said in degrees.

    python benchmarks/head_turn_yaw.py [--every 4]

Each photo's largest face is found by RetinaFace and meshed as the editor meshes it (refined once). Every photo turned
20 degrees or more is used, and every ``--every``-th of the rest. Prints the correlation, the turn per band of yaw and
a line through the origin band; writes benchmarks/results/head_turn_yaw.json. Skips cleanly without
../shared/data/genki4k.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import bench_utils as bench

from expr_models.errors import ImageLoadError
from expr_models.faces.lower_face_frame import MAX_TURN as LOWER_FACE_MAX_TURN
from expr_models.faces.mesh import face_mesh, head_turn
from expr_models.io import load_image
from expr_models.methods.mesh import MAX_HEAD_TURN
from expr_models.pipeline import ExpressionEditor

YAW_BANDS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 90))  # degrees, |yaw|
ALWAYS_FROM = 20.0  # degrees: the turned photos are few, so each is kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--every", type=int, default=4, help="of the photos turned less than 20 degrees, every N-th")
    parser.add_argument("--output", type=Path, default=None, help="the JSON (default benchmarks/results/)")
    args = parser.parse_args(argv)
    root = args.data / "genki4k"
    if not (root / "labels.txt").is_file():
        print(f"skipped: no genki4k under {args.data}")
        return 0

    editor = ExpressionEditor.from_pretrained(bench.REPO_ROOT / "checkpoints", num_threads=2)
    mesh_model = editor.model("face_mesh")
    yaws, turns, unreadable, no_face = [], [], [], 0
    for number, line in enumerate((root / "labels.txt").read_text().splitlines(), start=1):
        try:
            yaw = float(np.degrees(float(line.split()[1])))  # smile yaw pitch roll, radians
        except (IndexError, ValueError):
            unreadable.append(f"labels.txt line {number}: {line!r}")
            continue
        if abs(yaw) < ALWAYS_FROM and number % args.every:
            continue
        try:
            photo = np.asarray(load_image(root / "files" / f"file{number:04d}.jpg"))
        except ImageLoadError as error:
            unreadable.append(str(error))
            continue
        boxes = editor.detect_faces(photo)
        if not boxes:
            no_face += 1
            continue
        yaws.append(yaw)
        turns.append(head_turn(face_mesh(photo, boxes[0], mesh_model, refine=True)))

    yaws, turns = np.abs(np.array(yaws)), np.abs(np.array(turns))
    slope = float(np.sum(yaws * turns) / np.sum(yaws * yaws))  # |turn| = slope * |yaw|, through the origin
    bands = []
    for low, high in YAW_BANDS:
        inside = turns[(yaws >= low) & (yaws < high)]
        if len(inside):
            bands.append({"yaw_degrees": [low, high], "faces": int(len(inside)),
                          "turn_median": round(float(np.median(inside)), 3),
                          "turn_q90": round(float(np.quantile(inside, 0.9)), 3),
                          "share_past_mesh_limit": round(float(np.mean(inside > MAX_HEAD_TURN)), 3)})
    payload = {"machine": bench.machine(), "faces": int(len(yaws)), "no_face_found": no_face,
               "unreadable": unreadable, "correlation": round(float(np.corrcoef(yaws, turns)[0, 1]), 3),
               "turn_per_degree": round(slope, 4), "bands": bands,
               "limits_in_degrees": {"mesh warp (MAX_HEAD_TURN)": round(MAX_HEAD_TURN / slope, 1),
                                     "learned lower face (MAX_TURN)": round(LOWER_FACE_MAX_TURN / slope, 1)}}
    print(bench.machine_line(payload["machine"]))
    print(f"{len(yaws)} GENKI-4K faces ({no_face} without a face found, {len(unreadable)} unreadable): "
          f"|turn| against |yaw| correlation {payload['correlation']}, {slope:.4f} per degree")
    for band in bands:
        print(f"  |yaw| {band['yaw_degrees'][0]}-{band['yaw_degrees'][1]} deg: {band['faces']} faces, |turn| median "
              f"{band['turn_median']}, 90th percentile {band['turn_q90']}, past the mesh limit "
              f"{100 * band['share_past_mesh_limit']:.0f}%")
    for name, degrees in payload["limits_in_degrees"].items():
        print(f"  {name}: about {degrees} degrees")
    print(f"wrote {bench.save_results('head_turn_yaw', payload, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
