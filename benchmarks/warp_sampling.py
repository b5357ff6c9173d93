"""How the mesh warp samples the photo: its kernel (how sharp the edited mouth stays, and what it costs, cubic
against Lanczos) and its held irises (what keeping each iris round costs), in one run.

    python benchmarks/warp_sampling.py [--pairs 12] [--repeats 9]

1. The kernel alone: each photo shifted by half a pixel (the warp's worst case), Laplacian variance of its middle
   third over the original's (needs ../shared/data: JAFFE, London Set, FEI; skipped without it).
2. Through the editor (``ExpressionEditor.edit``), on held-out people's photos of ../shared/data (the test split):
   JAFFE neutral -> each expression with the SA-GAN, FEI and London neutral -> happy with the CycleGAN. Mouth
   sharpness = Laplacian variance of the edit's mouth over the input's, each from its own face mesh
   (``evaluation.mesh_metrics.mouth_sharpness``, as ``evaluate`` reports it); the median per dataset and edit.
3. Time: a 1 MP photo (scikit-image's astronaut, enlarged), ``editor.edit`` with each kernel, alternating, median of
   ``--repeats``: the CycleGAN -> neutral and the SA-GAN -> surprise.
4. Time: the same photo, ``editor.edit`` with the irises held (``faces.eye_interior``) and with the plain map,
   alternating: the SA-GAN -> surprise, the CycleGAN -> happy, and the mesh motion with the ``eyes`` control at 1.

Writes benchmarks/results/warp_sampling.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import bench_utils as bench

KERNELS = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def kernel_alone(photos: list[Path]) -> dict[str, dict[str, float]]:
    """Per dataset and kernel, the median Laplacian variance ratio of a half-pixel shift."""
    from expr_models.evaluation.mesh_metrics import laplacian_variance

    ratios: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        region = (slice(height // 3, 2 * height // 3), slice(width // 3, 2 * width // 3))
        columns, rows = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5, np.arange(height, dtype=np.float32) + 0.5)
        before = laplacian_variance(image, region)
        for name, kernel in KERNELS.items():
            shifted = cv2.remap(image, columns, rows, kernel, borderMode=cv2.BORDER_REFLECT)
            ratios[path.parent.name if path.parent.name != "neutral" else "london"][name].append(
                laplacian_variance(shifted, region) / before)
    return {dataset: {name: round(float(np.median(values)), 3) for name, values in by_kernel.items()}
            for dataset, by_kernel in ratios.items()}


def through_the_editor(editor, data: Path, pairs_per_edit: int) -> dict[str, dict[str, float]]:
    """Per dataset and edit, the median mouth sharpness of each kernel's edits of the test people."""
    import expr_models.faces.mesh_warp as mesh_warp
    from expr_models.evaluation.mesh_metrics import mouth_sharpness
    from expr_models.evaluation.realism import photo_mesh, read_rgb, realism_pairs
    from expr_models.faces.alignment import retinaface_face

    counts: dict[str, int] = defaultdict(int)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for pair in realism_pairs(data, "test"):
        if pair.source_expression != "neutral":
            continue
        edit = f"{pair.dataset} neutral -> {pair.target_expression}"
        if counts[edit] >= pairs_per_edit:
            continue
        method = "cyclegan" if pair.target_expression == "happy" and pair.dataset != "jaffe" else "sagan"
        photo = read_rgb(pair.source_path)
        found = retinaface_face(photo)
        mesh = photo_mesh(editor, photo, found) if found is not None else None
        if mesh is None:
            continue
        counts[edit] += 1
        for name, kernel in KERNELS.items():
            mesh_warp.SAMPLING = kernel
            edited = np.asarray(editor.edit(Image.fromarray(photo), method=method, target=pair.target_expression,
                                            read_expressions=False).image.convert("RGB"))
            edited_mesh = photo_mesh(editor, edited, found)
            if edited_mesh is not None:
                scores[f"{edit} ({method})"][name].append(mouth_sharpness(photo, edited, mesh, edited_mesh))
    mesh_warp.SAMPLING = KERNELS["lanczos"]
    return {edit: {name: round(float(np.median(values)), 3) for name, values in by_kernel.items()}
            | {"photos": len(next(iter(by_kernel.values())))} for edit, by_kernel in sorted(scores.items())}


def timing(editor, repeats: int) -> dict[str, dict]:
    """``editor.edit`` of a 1 MP photo with each kernel, alternating run by run."""
    import expr_models.faces.mesh_warp as mesh_warp

    photo = Image.fromarray(np.asarray(bench.astronaut())).resize((1024, 1024), Image.LANCZOS)
    results: dict[str, dict] = {}
    for method, target in (("cyclegan", "neutral"), ("sagan", "surprise")):
        seconds: dict[str, list[float]] = defaultdict(list)
        for _ in range(repeats + 1):  # the first round warms up
            for name, kernel in KERNELS.items():
                mesh_warp.SAMPLING = kernel
                tick = time.perf_counter()
                editor.edit(photo, method=method, target=target)
                seconds[name].append(time.perf_counter() - tick)
        mesh_warp.SAMPLING = KERNELS["lanczos"]
        medians = {name: float(np.median(values[1:])) for name, values in seconds.items()}
        results[f"{method} -> {target}"] = {**{f"{name}_s": round(value, 4) for name, value in medians.items()},
                                            "lanczos_over_cubic": round(medians["lanczos"] / medians["cubic"], 3)}
    return results


def iris_timing(editor, repeats: int) -> dict[str, dict]:
    """``editor.edit`` of a 1 MP photo with the irises held and with the plain map, alternating run by run."""
    import expr_models.faces.mesh_warp as mesh_warp

    photo = Image.fromarray(np.asarray(bench.astronaut())).resize((1024, 1024), Image.LANCZOS)
    held = mesh_warp.steady_irises
    results: dict[str, dict] = {}
    try:
        for method, target, controls in (("sagan", "surprise", {}), ("cyclegan", "happy", {}),
                                         ("mesh", "neutral", {"eyes": 1.0})):
            seconds: dict[str, list[float]] = defaultdict(list)
            for _ in range(repeats + 1):
                for name, steady in (("held", held), ("plain", lambda *args, **kwargs: [])):
                    mesh_warp.steady_irises = steady
                    tick = time.perf_counter()
                    editor.edit(photo, method=method, target=target, **controls)
                    seconds[name].append(time.perf_counter() - tick)
            medians = {name: float(np.median(values[1:])) for name, values in seconds.items()}
            label = f"{method} -> {target}" + "".join(f", {key} {value:g}" for key, value in controls.items())
            results[label] = {**{f"{name}_s": round(value, 4) for name, value in medians.items()},
                              "held_over_plain": round(medians["held"] / medians["plain"], 3)}
    finally:
        mesh_warp.steady_irises = held
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--pairs", type=int, default=12, help="photo pairs per dataset and edit (default 12)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    from expr_models.pipeline import ExpressionEditor

    info = bench.machine()
    print(bench.machine_line(info))
    payload: dict = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    editor = ExpressionEditor.from_pretrained(bench.REPO_ROOT / "checkpoints")
    if args.data.is_dir():
        photos = (sorted((args.data / "jaffe").glob("*.tiff"))[::20] + sorted((args.data / "london" / "neutral").glob(
            "*.jpg"))[:8] + sorted((args.data / "fei").glob("*a.jpg"))[:8])
        payload["half_pixel_shift"] = kernel_alone(photos)
        for dataset, row in payload["half_pixel_shift"].items():
            print(f"half-pixel shift, {dataset}: Laplacian variance kept, cubic {row['cubic']:.2f}, "
                  f"Lanczos {row['lanczos']:.2f}")
        payload["mouth_sharpness"] = through_the_editor(editor, args.data, args.pairs)
        for edit, row in payload["mouth_sharpness"].items():
            print(f"mouth sharpness, {edit}, {row['photos']} photos: cubic {row['cubic']:.2f}, "
                  f"Lanczos {row['lanczos']:.2f}")
    else:
        print(f"no data at {args.data}: only the timing runs")
    payload["timing_1mp"] = timing(editor, args.repeats)
    for edit, row in payload["timing_1mp"].items():
        print(f"1 MP edit alone, {edit}: cubic {row['cubic_s']:.3f} s, Lanczos {row['lanczos_s']:.3f} s "
              f"({row['lanczos_over_cubic']:.2f}x)")
    payload["irises_1mp"] = iris_timing(editor, args.repeats)
    for edit, row in payload["irises_1mp"].items():
        print(f"1 MP edit alone, {edit}: irises held {row['held_s']:.3f} s, plain map {row['plain_s']:.3f} s "
              f"({row['held_over_plain']:.2f}x)")
    payload["load_average_after"] = bench.load_average()
    out = bench.RESULTS_DIR / "warp_sampling.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
