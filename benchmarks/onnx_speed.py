"""What the checkpoints' ONNX graphs save: each network, then whole edits and the CLI, against the same checkpoints
without their graphs (torch's forward), in one run.

    python benchmarks/onnx_speed.py [--repeats 5] [--photos 8] [--no-cli]

1. Each network with a graph (``python -m train.tools.export_onnx``), one face (batch 1), one thread: the median of
   40 forwards by onnxruntime and by torch, and on a CPU with native bf16 by torch under bf16 autocast too (what the
   editor's ``precision="auto"`` would run without the graphs there).
2. ``editor.edit`` on 1 MP photos, the readings of the input and the edit included (what the Space shows): the
   astronaut (scikit-image) -> neutral and Grace Hopper (matplotlib) -> happy by the CycleGAN, Grace Hopper ->
   surprise by the SA-GAN; per round the median of 5 edits with each editor, ``--repeats`` rounds alternating, and
   the largest pixel difference between the two editors' results. Both editors at the default precision: on a CPU
   with native bf16 the one without graphs runs its networks under bf16 autocast.
3. The CLI end to end on the astronaut -> neutral (``user_latency.cli_seconds_per_photo``: seconds per photo after
   the first, from a run on one photo and one on ``--photos`` + 1), with each folder in turn, ``--repeats`` rounds;
   the medians.

Writes benchmarks/results/onnx_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import bench_utils as bench
from expr_models.models.runtime import cpu_has_fast_bf16, torch_threads
from mouth_latency import astronaut_jpeg
from user_latency import cli_seconds_per_photo

CASES = (("astronaut", "cyclegan", "neutral"), ("grace_hopper", "cyclegan", "happy"),
         ("grace_hopper", "sagan", "surprise"))


def torch_only(models: Path, folder: Path) -> Path:
    """``folder`` holding links to every file of ``models`` but the ONNX graphs of its networks."""
    from expr_models.models.onnx_forward import ONNX_FILE

    folder.mkdir()
    for path in sorted(models.iterdir()):
        if path.is_dir():
            (folder / path.name).mkdir()
            for item in path.iterdir():
                if item.name != ONNX_FILE:
                    (folder / path.name / item.name).symlink_to(item.resolve())
        else:
            (folder / path.name).symlink_to(path.resolve())
    return folder


def median_ms(fn, count: int = 40) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def networks(fast, plain) -> dict:
    rows = {}
    for name in sorted(fast.models_dir.iterdir()):
        if not (name / "model.onnx").is_file():
            continue
        with_graph, without_graph = fast.model(name.name), plain.model(name.name)
        torch.manual_seed(0)
        inputs = tuple(tensor[:1] for tensor in with_graph.onnx_example_inputs())
        with torch_threads(1), torch.inference_mode():  # one thread each, as the editor runs them
            onnx_ms = median_ms(lambda: with_graph.run_network(*inputs))
            torch_ms = median_ms(lambda: without_graph.run_network(*inputs))
            rows[name.name] = {"onnx_ms": onnx_ms, "torch_ms": torch_ms, "ratio": onnx_ms / torch_ms}
            line = f"{name.name}: onnxruntime {onnx_ms:.1f} ms, torch {torch_ms:.1f} ms ({onnx_ms / torch_ms:.2f}x)"
            if cpu_has_fast_bf16():  # where precision="auto" would otherwise run torch under bf16 autocast
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    bf16_ms = median_ms(lambda: without_graph.run_network(*inputs))
                rows[name.name].update(torch_bf16_ms=bf16_ms, ratio_to_bf16=onnx_ms / bf16_ms)
                line += f", torch bf16 {bf16_ms:.1f} ms ({onnx_ms / bf16_ms:.2f}x)"
        print(line)
    return rows


def edits(fast, plain, photos: dict, repeats: int) -> dict:
    rows = {}
    for photo_name, method, target in CASES:
        photo = photos[photo_name]
        run = {name: (lambda editor=editor: editor.edit(photo, method=method, target=target))
               for name, editor in (("onnx", fast), ("torch", plain))}
        images = {name: np.asarray(fn().image, np.int16) for name, fn in run.items()}
        rounds = {"onnx": [], "torch": []}
        for _ in range(repeats):
            for name, fn in run.items():
                rounds[name].append(median_ms(fn, count=5))
        onnx_ms, torch_ms = (statistics.median(rounds[name]) for name in ("onnx", "torch"))
        difference = np.abs(images["onnx"] - images["torch"])
        key = f"{photo_name} -> {target} ({method})"
        rows[key] = {"onnx_ms": onnx_ms, "torch_ms": torch_ms, "ratio": onnx_ms / torch_ms, "rounds": rounds,
                     "largest_pixel_difference": int(difference.max()),
                     "pixels_differing": int((difference > 0).any(-1).sum())}
        print(f"{key}: edit with both readings {onnx_ms:.0f} ms with the graphs, {torch_ms:.0f} ms without "
              f"({onnx_ms / torch_ms:.2f}x); {rows[key]['pixels_differing']} pixels differ, by at most "
              f"{rows[key]['largest_pixel_difference']} levels")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds per edit (default 5)")
    parser.add_argument("--photos", type=int, default=8, help="photos after the first in each CLI run (default 8)")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI runs (about 4 minutes)")
    args = parser.parse_args()
    from expr_models.pipeline import ExpressionEditor

    info = bench.machine()
    print(bench.machine_line(info))
    models = bench.REPO_ROOT / "checkpoints"
    payload = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_before": bench.load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain_models = torch_only(models, work / "torch_only")
        fast, plain = ExpressionEditor.from_pretrained(models), ExpressionEditor.from_pretrained(plain_models)
        payload["networks"] = networks(fast, plain)
        photos = {"astronaut": bench.photo_of_size(1.0, bench.astronaut()),
                  "grace_hopper": bench.photo_of_size(1.0, bench.grace_hopper())}
        payload["edits"] = edits(fast, plain, photos, args.repeats)
        if not args.no_cli:
            photo = astronaut_jpeg(work / "astronaut.jpg")
            pairs = {"onnx": [], "torch": []}
            for round_index in range(args.repeats):  # alternating: the shared machine drifts by a third in minutes
                for name, folder in (("onnx", models), ("torch", plain_models)):
                    runs = work / f"cli_{name}_{round_index}"
                    runs.mkdir()
                    result = cli_seconds_per_photo(folder, photo, args.photos, runs, "neutral", repeats=1)
                    pairs[name].append(result["per_photo_after_first_s"])
            onnx_s, torch_s = (statistics.median(pairs[name]) for name in ("onnx", "torch"))
            payload["cli"] = {"per_photo_each_round_s": pairs, "onnx_s": onnx_s, "torch_s": torch_s,
                              "ratio": onnx_s / torch_s}
            print(f"CLI, astronaut -> neutral: {onnx_s:.3f} s per photo with the graphs, {torch_s:.3f} s without "
                  f"({onnx_s / torch_s:.2f}x; medians of {args.repeats} alternating rounds)")
    payload["load_after"] = bench.load_average()
    print(f"wrote {bench.save_results('onnx_speed', payload)}")


if __name__ == "__main__":
    main()
