"""End-to-end edit latency and peak memory of ``ExpressionEditor``, against the reference CycleGAN generator.

    python benchmarks/edit_latency.py                       # all methods, 0.3/1/4 MP, 1 and 5 faces
    python benchmarks/edit_latency.py --methods cyclegan --sizes 1 --faces 1 --repeats 5

Each row is one configuration of the editor (``--variants``) editing one photo: the whole of ``editor.edit(path)``
(load and decode the JPEG, detect, crop, run the model, paste back), median of ``--repeats`` runs after a warm-up.
The photos are Grace Hopper (matplotlib's sample) resized to about 0.3, 1 and 4 MP for one face, and generated 4:3
canvases with five faces (astronaut and Grace Hopper crops) for five.

Each method and variant runs in its own worker process, so its peak RSS (``ru_maxrss``) is its own: the models of that
method loaded, all photos edited. The worker then times the anchor in the same process: the reference CycleGAN
ResNet-9 generator (Zhu et al. 2017: ngf 64, 9 residual blocks, transposed-conv upsampling, instance norm, 3 channels,
one 256x256 image, fp32, inference mode), written out plainly below as in junyanz/pytorch-CycleGAN-and-pix2pix. The
anchor is timed with torch's default threads and with one thread and the faster is used, so the ratio never
flatters the pipeline.

Targets (2 CPU cores): a ~1 MP photo with one face in <= 0.3 s median with CycleGAN or SA-GAN, and the default
pipeline's time <= 1/5 of the reference generator's forward.

Models: checkpoints/cyclegan and checkpoints/sagan when committed; until then randomly initialised models with the
default inference configs (CycleGAN 128 px, ngf 32, 2 downsamplings, 6 blocks; SA-GAN 128 px, ngf 32, 6 blocks),
saved to a temporary folder and loaded with ``ExpressionEditor.from_pretrained``, as the Space loads its models.
Random weights take exactly as long as trained ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import bench_utils as bu

# Editor settings per variant. "default" is what ExpressionEditor does out of the box (RetinaFace on a copy of at most
# 640 px); "haar" is the default but with the Haar cascade (640 px), the default detector before RetinaFace; "before"
# is the pipeline's behaviour before issue 8 (fp32 generators, Haar on a copy of at most 1024 px, torch's own thread
# count); "torch_threads" is the default but with torch's own thread count for the generators instead of one.
# "detect1024"/"detect512": Haar on a copy of at most 1024/512 px; "retinaface1024"/"retinaface480": RetinaFace so.
VARIANTS = {
    "default": {},
    "haar": {"detector": "haar"},
    "before": {"precision": "fp32", "detector": "haar", "detector_max_side": 1024, "num_threads": None},
    "fp32": {"precision": "fp32"},
    "torch_threads": {"num_threads": None},
    "bf16": {"precision": "bf16"},
    "detect1024": {"detector": "haar", "detector_max_side": 1024},
    "detect512": {"detector": "haar", "detector_max_side": 512},
    "retinaface1024": {"detector_max_side": 1024},
    "retinaface480": {"detector_max_side": 480},
}
TARGET_SECONDS = 0.3
TARGET_RATIO = 0.2


# ---------------------------------------------------------------------------------------------------------------------
# The reference generator (Zhu et al. 2017), written out plainly
# ---------------------------------------------------------------------------------------------------------------------

class ReferenceResnetBlock(nn.Module):
    """Reflection pad, 3x3 conv, instance norm, ReLU, reflection pad, 3x3 conv, instance norm; plus the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True), nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True), nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ReferenceResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3, tanh: the CycleGAN generator for 256x256 images.

    Instance norm without affine parameters and with biases in the convs, as the reference builds it with
    ``norm='instance'``; upsampling by stride-2 transposed convs; no dropout.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
                                   nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):  # downsampling
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        layers += [ReferenceResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # upsampling
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def time_reference(repeats: int, device: str = "cpu", size: int = 256) -> dict:
    """The anchor: one ``size`` x ``size`` (256) RGB image through the reference generator, fp32, with torch's
    default threads and with one thread. ``median_s`` is the faster of the two medians."""
    torch.manual_seed(0)
    model = ReferenceResnetGenerator().to(device).eval()
    image = torch.rand(1, 3, size, size, device=device) * 2 - 1
    result: dict = {"parameters": sum(p.numel() for p in model.parameters()), "size": size}
    default_threads = torch.get_num_threads()
    with torch.inference_mode():
        result["default_threads"] = {"threads": default_threads,
                                     **bu.measure(lambda: model(image), repeats, warmup=2, device=device)}
        if device == "cpu" and default_threads != 1:
            torch.set_num_threads(1)
            try:
                result["one_thread"] = {"threads": 1, **bu.measure(lambda: model(image), repeats, warmup=1)}
            finally:
                torch.set_num_threads(default_threads)
    best = min((v for k, v in result.items() if isinstance(v, dict)), key=lambda v: v["median_s"])
    result["median_s"] = best["median_s"]
    result["threads_used"] = best["threads"]
    return result


# ---------------------------------------------------------------------------------------------------------------------
# One worker: one method, one variant
# ---------------------------------------------------------------------------------------------------------------------

def make_photos(folder: Path, sizes: list[float], faces: list[int]) -> list[dict]:
    photos = []
    for megapixels in sizes:
        for count in faces:
            array = bu.photo_of_size(megapixels) if count == 1 else bu.multi_face_canvas(megapixels, count)
            path = bu.encode_jpeg(array, folder / f"photo_{megapixels}mp_{count}faces.jpg")
            photos.append({"megapixels": megapixels, "faces": count, "path": str(path),
                           "size": f"{array.shape[1]}x{array.shape[0]}"})
    return photos


def build_editor(models_dir: Path, variant: str, nst_steps: int):
    from expr_models.faces.detection import HaarFaceDetector, RetinaFaceDetector
    from expr_models.pipeline import ExpressionEditor

    settings = dict(VARIANTS[variant])
    kwargs = {}
    detector, side = settings.pop("detector", "retinaface"), settings.pop("detector_max_side", None)
    if detector == "haar":
        kwargs["detector"] = HaarFaceDetector(max_side=side or 640)
    elif side is not None:
        kwargs["detector"] = RetinaFaceDetector(max_side=side)
    return ExpressionEditor.from_pretrained(models_dir, nst_steps=nst_steps, **settings, **kwargs)


def worker(args) -> dict:
    folder = Path(args.workdir)
    photos = json.loads((folder / "photos.json").read_text())
    rss_start = bu.rss_mib()
    tick = time.perf_counter()
    # "sagan64": the SA-GAN at 64 px, from its own models folder (only made while no SA-GAN is committed).
    models = folder / ("models_sagan64" if args.method == "sagan64" else "models")
    editor = build_editor(models, args.variant, args.nst_steps)
    method = "sagan" if args.method == "sagan64" else args.method
    target = None if method == "nst" else "happy"
    editor.prepare(method, target)
    load_seconds = time.perf_counter() - tick
    reference_photo = bu.astronaut() if method == "nst" else None
    rows = []
    for photo in photos:
        load_before = bu.load_average()[:1]
        timings: dict[str, list[float]] = {}
        found = []

        def edit():
            result = editor.edit(photo["path"], method=method, target=target, reference=reference_photo)
            for key, value in result.timings.items():
                timings.setdefault(key, []).append(value)
            found.append(len(result.faces))

        stats = bu.measure(edit, repeats=args.repeats if method != "nst" else max(1, args.repeats // 3), warmup=1)
        stages = {f"{key}_s": sorted(values[1:])[len(values[1:]) // 2] for key, values in timings.items()
                  if len(values) > 1}
        rows.append({"method": args.method, "variant": args.variant, "megapixels": photo["megapixels"],
                     "photo": photo["size"], "faces": photo["faces"], "faces_found": found[-1], **stats, **stages,
                     "load_average": load_before + bu.load_average()[:1]})
        print(f"  {method:8s} {args.variant:8s} {photo['size']:>9s} faces {found[-1]}/{photo['faces']}: "
              f"{stats['median_s']:.3f} s", file=sys.stderr, flush=True)
    peak = bu.peak_rss_mib()
    precision_check = compare_with_fp32(editor, photos, method, target, reference_photo)
    generator = time_generator(editor, method, args.repeats)
    anchor = time_reference(args.anchor_repeats, size=args.anchor_size)
    if generator:
        generator["ratio_to_reference"] = generator["median_s"] / anchor["median_s"]
    single = anchor.get("one_thread", anchor["default_threads"])
    for row in rows:
        row["ratio_to_reference"] = row["median_s"] / anchor["median_s"]
        # Load-robust companion: CPU seconds against the one-thread reference's CPU seconds.
        row["ratio_to_reference_cpu"] = row["cpu_median_s"] / single["cpu_median_s"]
    return {"method": args.method, "variant": args.variant, "rows": rows, "peak_rss_mib": peak,
            "rss_at_start_mib": rss_start, "model_load_s": load_seconds, "reference": anchor,
            "precision": editor.precision, "autocast": str(editor.autocast_dtype), "num_threads": editor.num_threads,
            "output_vs_fp32": precision_check, "generator_alone": generator,
            "nst_steps": editor.nst_steps if method == "nst" else None,
            "nst_resolution": editor.nst_resolution if method == "nst" else None}


def time_generator(editor, method: str, repeats: int) -> dict | None:
    """The model alone, as the editor runs it (its precision and threads, inference mode): one face tensor at the
    model's resolution through ``generate``; a mesh generator (which moves a face's mesh, not pixels) is not timed
    here, its cost is the face mesh and the warp, which the edit's own time counts."""
    if method not in ("cyclegan", "sagan") or editor.store.config(method).generator_type == "mesh":
        return None
    if method == "cyclegan":
        from expr_models.methods.cyclegan import checkpoint_for

        model = editor.model("cyclegan", checkpoint_for(editor, "happy"))
        call = lambda x: model.generate(x, to="happy")  # noqa: E731
    else:
        model = editor.model("sagan")
        labels = model.labels_for("happy", 1)
        call = lambda x: model.generate(x, to=labels)  # noqa: E731
    config = model.config
    pixels = torch.rand(1, config.in_channels, config.resolution, config.resolution) * 2 - 1
    with editor.generating():
        stats = bu.measure(lambda: call(pixels), repeats=max(repeats, 9), warmup=2)
    return {"resolution": config.resolution, "channels": config.in_channels, **stats}


def compare_with_fp32(editor, photos: list[dict], method: str, target, reference_photo) -> dict | None:
    """How far the editor's output (bf16 autocast, when that is its precision) lands from the same edit in fp32:
    over the pixels the edit may change (the blend masks), in 8-bit levels, for the first one-face photo."""
    import numpy as np

    if editor.autocast_dtype is None or method == "nst":
        return None
    photo = next((p for p in photos if p["faces"] == 1), photos[0])
    fast = editor.edit(photo["path"], method=method, target=target, reference=reference_photo)
    saved = editor.autocast_dtype
    editor.autocast_dtype = None
    try:
        exact = editor.edit(photo["path"], method=method, target=target, reference=reference_photo)
    finally:
        editor.autocast_dtype = saved
    inside = np.asarray(exact.mask_image()) > 0
    diff = np.abs(np.asarray(fast.image, np.int16) - np.asarray(exact.image, np.int16))[inside]
    change = np.abs(np.asarray(exact.image, np.int16) - np.asarray(exact.original, np.int16))[inside]
    return {"photo": photo["size"], "dtype": str(saved), "mean_abs_diff_levels": float(diff.mean()),
            "p99_abs_diff_levels": float(np.percentile(diff, 99)), "max_abs_diff_levels": int(diff.max()),
            "mean_abs_edit_levels_fp32": float(change.mean())}


# ---------------------------------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["cyclegan", "sagan", "sagan64", "nst"],
                        choices=["cyclegan", "sagan", "sagan64", "nst"],
                        help="sagan64: a random 64 px SA-GAN as well (skipped once an SA-GAN is committed)")
    parser.add_argument("--variants", nargs="+", default=["default", "torch_threads", "before"],
                        choices=list(VARIANTS))
    parser.add_argument("--sizes", nargs="+", type=float, default=[0.3, 1.0, 4.0], help="megapixels")
    parser.add_argument("--faces", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--anchor-repeats", type=int, default=5)
    parser.add_argument("--anchor-size", type=int, default=256, help=argparse.SUPPRESS)  # smaller only for tests
    parser.add_argument("--nst-steps", type=int, default=20, help="NST steps per face (capped for this benchmark)")
    parser.add_argument("--sagan-resolution", type=int, default=None,
                        help="resolution of the random SA-GAN when none is committed (default: 128)")
    parser.add_argument("--output", type=Path, help="JSON path (default: benchmarks/results/edit_latency.json)")
    parser.add_argument("--no-save", action="store_true")
    # internal: one worker process
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args)
        Path(args.workdir, f"result_{args.method}_{args.variant}.json").write_text(json.dumps(result, default=str))
        return 0

    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edit_latency_") as temp:
        folder = Path(temp)
        _, sources = bu.inference_checkpoints(folder / "models", sagan_resolution=args.sagan_resolution)
        methods = list(args.methods)
        if "sagan64" in methods:
            if sources["sagan"].startswith("committed"):
                methods.remove("sagan64")
            else:
                _, extra = bu.inference_checkpoints(folder / "models_sagan64", sagan_resolution=64)
                sources["sagan64"] = extra["sagan"]
        photos = make_photos(folder, args.sizes, args.faces)
        (folder / "photos.json").write_text(json.dumps(photos))
        print("Models: " + "; ".join(f"{k}: {v}" for k, v in sources.items()), flush=True)
        workers = []
        for method in methods:
            # NST runs on torch's own threads and fp32 in every variant but "before": time it once.
            for variant in (["default"] if method == "nst" and "default" in args.variants else args.variants):
                command = [sys.executable, __file__, "--worker", "--workdir", temp, "--method", method, "--variant",
                           variant, "--repeats", str(args.repeats), "--anchor-repeats", str(args.anchor_repeats),
                           "--nst-steps", str(args.nst_steps)]
                subprocess.run(command, check=True, cwd=bu.REPO_ROOT)
                workers.append(json.loads((folder / f"result_{method}_{variant}.json").read_text()))

    rows = [dict(row, peak_rss_mib=w["peak_rss_mib"]) for w in workers for row in w["rows"]]
    columns = [("method", "method"), ("variant", "variant"), ("photo", "photo"), ("faces_found", "faces"),
               ("median_s", "median s"), ("q1_s", "q1"), ("q3_s", "q3"), ("cpu_median_s", "CPU s"),
               ("load_s", "load"), ("detect_s", "detect"), ("edit_s", "edit"),
               ("ratio_to_reference", "/ reference"), ("ratio_to_reference_cpu", "/ reference (CPU s)"),
               ("peak_rss_mib", "peak RSS MiB")]
    table = bu.format_table(rows, columns)
    print(table)
    references = {f"{w['method']}/{w['variant']}": round(w["reference"]["median_s"], 3) for w in workers}
    print("Reference ResNet-9 generator (256 px, fp32) per worker, s: " + json.dumps(references))
    for w in workers:
        if w.get("generator_alone"):
            g = w["generator_alone"]
            print(f"{w['method']}/{w['variant']} generator alone ({g['resolution']} px, as the editor runs it): "
                  f"{1000 * g['median_s']:.1f} ms = {g['ratio_to_reference']:.3f} of the reference forward")
    for w in workers:
        if w.get("output_vs_fp32"):
            check = w["output_vs_fp32"]
            print(f"{w['method']}/{w['variant']} {check['dtype']} vs fp32 output, face region: mean "
                  f"{check['mean_abs_diff_levels']:.2f}, p99 {check['p99_abs_diff_levels']:.0f}, max "
                  f"{check['max_abs_diff_levels']} levels (the fp32 edit itself: mean "
                  f"{check['mean_abs_edit_levels_fp32']:.1f} levels)")

    targets = []
    for method in ("cyclegan", "sagan", "sagan64"):
        for w in workers:
            if w["method"] != method or w["variant"] != "default":
                continue
            one_mp = [r for r in w["rows"] if r["faces"] == 1 and abs(r["megapixels"] - 1.0) < 1e-6]
            if one_mp:
                row = one_mp[0]
                targets.append(bu.target_line(f"{method}: 1 MP, 1 face, median", row["median_s"], TARGET_SECONDS))
                targets.append(bu.target_line(f"{method}: 1 MP, 1 face / reference generator forward",
                                              row["ratio_to_reference"], TARGET_RATIO, unit="ratio"))
                targets.append(bu.target_line(f"{method}: 1 MP, 1 face, CPU seconds (load-robust estimate)",
                                              row["cpu_median_s"], TARGET_SECONDS))
                targets.append(bu.target_line(f"{method}: 1 MP, 1 face / reference, CPU seconds",
                                              row["ratio_to_reference_cpu"], TARGET_RATIO, unit="ratio"))
                if w.get("generator_alone"):
                    targets.append(bu.target_line(f"{method}: generator alone, as the editor runs it / reference",
                                                  w["generator_alone"]["ratio_to_reference"], TARGET_RATIO,
                                                  unit="ratio"))
    for line in targets:
        print(f"target {line['target']}: {line['measured']:.4g} {line['unit']} (limit {line['limit']}) -> "
              f"{'holds' if line['holds'] else 'MISSED'} ({line['margin']})")
    info["load_average_at_end"] = bu.load_average()
    payload = {"benchmark": "edit_latency", "machine": info, "models": sources, "settings": vars(args) | {"output": None},
               "variants": {name: VARIANTS[name] for name in args.variants}, "rows": rows, "workers": workers,
               "targets": targets, "table": table}
    if not args.no_save:
        path = bu.save_results("edit_latency", payload, args.output)
        print(f"Saved {path.relative_to(bu.REPO_ROOT) if path.is_relative_to(bu.REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
