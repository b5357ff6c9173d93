"""CycleGAN training throughput: our training step (train/cyclegan.py on train/loop.py's accelerate Trainer) against
a plain reference implementation of the same step, in the same process.

    python benchmarks/training_throughput.py                      # CPU: every variant of ours
    python benchmarks/training_throughput.py --device cuda        # GPU (a later GPU session)
    python benchmarks/training_throughput.py --variants bf16 --steps 6

The step, both sides: both generators, both PatchGAN discriminators, LSGAN + cycle + identity (+ the attention-mask
L1 our generator has) losses, image pools of 50, two Adam optimisers; the default training config (128 px, 1
channel, ngf 32, 6 residual blocks, ndf 64, 3 layers) and batch (4 unpaired x/y pairs), on a fixed synthetic batch.

- reference: the step written out plainly below with the same model classes: fp32, contiguous tensors, no
  compile, ``torch.optim.Adam`` with its defaults (TF32 off on GPU);
- ours: ``CycleGANStep`` built by ``Trainer.setup()`` (``accelerator.prepare`` of the four nets, optimisers and
  schedulers) with the loop's flags (``--mixed-precision``, ``--channels-last``, ``--compile``), each step run as
  ``Trainer.train`` runs it (``step.step(batch, i)`` inside ``accelerator.accumulate``). Data loading is left out
  of both.

Each variant of ours runs in its own worker process (accelerate's state is per process) beside its own reference;
their steps alternate (reference, ours, reference, ...) so that load changes hit both alike. images/s counts the
x/y pairs of a batch per second; the speed-up is ours / reference of the medians.

Targets: >= 1.3x on CPU and >= 2x on GPU with the best variant.

``fused_adam`` is a what-if, not something train/cyclegan.py does on CPU: the same step with ``fused=True`` Adam.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import bench_utils as bu

# name -> (loop flags, what-if changes to the step)
VARIANTS = {
    "fp32": ([], {}),
    "bf16": (["--mixed-precision", "bf16"], {}),
    "channels_last": (["--channels-last"], {}),
    "bf16_channels_last": (["--mixed-precision", "bf16", "--channels-last"], {}),
    "compile": (["--compile"], {}),
    "bf16_compile": (["--mixed-precision", "bf16", "--compile"], {}),
    "bf16_fused_adam": (["--mixed-precision", "bf16"], {"fused_adam": True}),
    "bf16_channels_last_compile": (["--mixed-precision", "bf16", "--channels-last", "--compile"], {}),
}
CPU_DEFAULT = ["fp32", "bf16", "channels_last", "bf16_channels_last", "bf16_fused_adam", "compile", "bf16_compile"]
GPU_DEFAULT = ["fp32", "bf16", "bf16_channels_last", "bf16_compile", "bf16_channels_last_compile"]
TARGETS = {"cpu": 1.3, "cuda": 2.0}


# ---------------------------------------------------------------------------------------------------------------------
# The reference step, written out plainly
# ---------------------------------------------------------------------------------------------------------------------

class ReferencePool:
    """The reference's image history: once full, each new fake is swapped, with probability 1/2, for an older one."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(self.size, ()))
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out)


class ReferenceStep:
    """One CycleGAN training step in plain PyTorch: fp32, no memory-format tricks, no compile, default Adam."""

    def __init__(self, config, weights, device: torch.device, lr: float = 5e-4, betas=(0.5, 0.999), seed: int = 0):
        from expr_models.models.cyclegan import CycleGANModel

        torch.manual_seed(seed)
        model = CycleGANModel(config).to(device).train()
        self.config, self.weights = config, weights  # weights: the loss weights (lambda_*) of the training arguments
        self.g_xy, self.g_yx = model.generator_xy, model.generator_yx
        self.d_x, self.d_y = model.discriminator_x, model.discriminator_y
        self.opt_g = torch.optim.Adam(itertools.chain(self.g_xy.parameters(), self.g_yx.parameters()), lr=lr,
                                      betas=betas)
        self.opt_d = torch.optim.Adam(itertools.chain(self.d_x.parameters(), self.d_y.parameters()), lr=lr,
                                      betas=betas)
        self.pool_x, self.pool_y = ReferencePool(), ReferencePool()

    @staticmethod
    def lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
        return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))

    def step(self, real_x: torch.Tensor, real_y: torch.Tensor) -> torch.Tensor:
        w = self.weights
        for p in itertools.chain(self.d_x.parameters(), self.d_y.parameters()):
            p.requires_grad_(False)
        fake_y, mask_xy = self.g_xy(real_x, return_mask=True)
        rec_x, mask_rec_x = self.g_yx(fake_y, return_mask=True)
        fake_x, mask_yx = self.g_yx(real_y, return_mask=True)
        rec_y, mask_rec_y = self.g_xy(fake_x, return_mask=True)
        identity = w.lambda_identity * w.lambda_cycle
        loss_g = (self.lsgan(self.d_y(fake_y), True) + self.lsgan(self.d_x(fake_x), True)
                  + w.lambda_cycle * (F.l1_loss(rec_x, real_x) + F.l1_loss(rec_y, real_y))
                  + identity * (F.l1_loss(self.g_xy(real_y), real_y) + F.l1_loss(self.g_yx(real_x), real_x))
                  + w.lambda_mask * (mask_xy.mean() + mask_rec_x.mean() + mask_yx.mean() + mask_rec_y.mean()))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for p in itertools.chain(self.d_x.parameters(), self.d_y.parameters()):
            p.requires_grad_(True)

        pooled_y, pooled_x = self.pool_y.query(fake_y), self.pool_x.query(fake_x)
        loss_d = 0.5 * (self.lsgan(self.d_y(real_y), True) + self.lsgan(self.d_y(pooled_y), False)) + \
            0.5 * (self.lsgan(self.d_x(real_x), True) + self.lsgan(self.d_x(pooled_x), False))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        return loss_g.detach() + loss_d.detach()


# ---------------------------------------------------------------------------------------------------------------------
# Ours: CycleGANStep on the Trainer, with synthetic data instead of a prepared dataset
# ---------------------------------------------------------------------------------------------------------------------

class SyntheticCrops(torch.utils.data.Dataset):
    def __init__(self, resolution: int, channels: int, seed: int, length: int = 64, **_):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(length, channels, resolution, resolution, generator=generator) * 2 - 1

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.images[index], "labels": 0}


@contextlib.contextmanager
def synthetic_data():
    """Let CycleGANStep.build run unchanged, on random crops instead of a prepared dataset."""
    import train.cyclegan as module

    saved = module.expression_rows, module.FaceCrops
    module.expression_rows = lambda *args, **kwargs: SimpleNamespace(rows=list(range(64)))
    module.FaceCrops = lambda parts, resolution, channels=1, seed=0, **kwargs: SyntheticCrops(resolution, channels, seed)
    try:
        yield
    finally:
        module.expression_rows, module.FaceCrops = saved


def build_ours(flags: list[str], what_if: dict, device: str, batch_size: int, output_dir: Path):
    from train.cyclegan import CycleGANStep
    from train.args import parse_args
    from train.loop import Trainer

    step_class = CycleGANStep
    if what_if.get("fused_adam"):
        class FusedAdamStep(CycleGANStep):
            def make_optimizers(self):
                specs = super().make_optimizers()
                for spec in specs.values():
                    for group in spec.optimizer.param_groups:
                        group["fused"], group["foreach"] = True, False
                    spec.optimizer.defaults.update(fused=True, foreach=False)
                return specs

        step_class = FusedAdamStep
    argv = ["--data", str(output_dir / "unused"), "--output-dir", str(output_dir), "--report-to", "none",
            "--sample-every", "0", "--checkpointing-steps", "0", "--batch-size", str(batch_size), "--seed", "0",
            *flags]
    if device == "cpu":
        argv.append("--cpu")
    args = parse_args(step_class, argv)
    args.argv = argv
    trainer = Trainer(step_class, args)
    with synthetic_data():
        trainer.setup()
    step, accelerator = trainer.step, trainer.accelerator
    for module in trainer.modules.values():
        module.train()
    return trainer, step, accelerator


def worker(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    flags, what_if = VARIANTS[args.variant]
    trainer, step, accelerator = build_ours(flags, what_if, args.device, args.batch_size, Path(args.workdir) / args.variant)
    config = step.config
    reference = ReferenceStep(config.__class__(**config.to_dict()), step.args, device)
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch_size, config.in_channels, config.resolution, config.resolution)
    batch = {"x": torch.rand(shape, generator=generator) * 2 - 1, "y": torch.rand(shape, generator=generator) * 2 - 1}
    batch = {key: value.to(device) for key, value in batch.items()}
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) if device.type == "cuda" else None

    counter = itertools.count()

    def run_ours():
        with accelerator.accumulate(*trainer.modules.values()):
            losses = step.step(batch, next(counter))
        losses["generator"].item()  # waits for the step, as the loop's logging does

    def run_reference():
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            reference.step(batch["x"], batch["y"]).item()
        finally:
            if tf32 is not None:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

    tick = time.perf_counter()
    for _ in range(args.warmup):  # compile happens here
        run_ours()
    warmup_ours = time.perf_counter() - tick
    for _ in range(2):
        run_reference()
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    cpus: dict[str, list[float]] = {"reference": [], "ours": []}
    for _ in range(args.steps):
        for name, fn in (("reference", run_reference), ("ours", run_ours)):
            bu.sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            bu.sync(device)
            times[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    result = {"variant": args.variant, "flags": " ".join(flags) or "(none)", "what_if": what_if,
              "warmup_steps": args.warmup, "warmup_seconds_ours": warmup_ours,
              "mixed_precision": accelerator.mixed_precision, "torch_threads": torch.get_num_threads()}
    for name in ("reference", "ours"):
        stats = bu.summary(times[name], cpus[name])
        result[name] = dict(stats, images_per_s=args.batch_size / stats["median_s"])
    result["speedup"] = result["reference"]["median_s"] / result["ours"]["median_s"]
    result["speedup_cpu_time"] = result["reference"]["cpu_median_s"] / result["ours"]["cpu_median_s"]
    result["peak_rss_mib"] = bu.peak_rss_mib()
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: a set per device")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12, help="timed steps of each side (default 12)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of ours first (compiles)")
    parser.add_argument("--threads", type=int, help="torch threads in the workers (default: torch's own). On a "
                        "machine busy with other jobs, 1 avoids OpenMP threads spinning against each other")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args)
        Path(args.workdir, f"result_{args.variant}.json").write_text(json.dumps(result, default=str))
        return 0

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("SKIP: --device cuda, but no CUDA device here")
        return 0
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    variants = args.variants or (GPU_DEFAULT if kind == "cuda" else CPU_DEFAULT)
    info = bu.machine(args.device)
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as temp:
        for variant in variants:
            command = [sys.executable, __file__, "--worker", "--workdir", temp, "--variant", variant, "--device",
                       args.device, "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup",
                       str(args.warmup)] + (["--threads", str(args.threads)] if args.threads else [])
            done = subprocess.run(command, cwd=bu.REPO_ROOT)
            if done.returncode != 0:
                print(f"variant {variant} failed (exit {done.returncode})", file=sys.stderr)
                results.append({"variant": variant, "failed": done.returncode})
                continue
            result = json.loads(Path(temp, f"result_{variant}.json").read_text())
            results.append(result)
            print(f"  {variant:28s} reference {result['reference']['images_per_s']:.2f} img/s, ours "
                  f"{result['ours']['images_per_s']:.2f} img/s: {result['speedup']:.2f}x", flush=True)

    rows = [{"variant": r["variant"], "flags": r.get("flags"), "reference_img_s": r["reference"]["images_per_s"],
             "ours_img_s": r["ours"]["images_per_s"], "speedup": r["speedup"],
             "speedup_cpu_time": r.get("speedup_cpu_time"),
             "reference_step_s": r["reference"]["median_s"], "ours_step_s": r["ours"]["median_s"],
             "ours_cpu_s": r["ours"].get("cpu_median_s"), "reference_cpu_s": r["reference"].get("cpu_median_s"),
             "warmup_s": r["warmup_seconds_ours"]}
            for r in results if "failed" not in r]
    columns = [("variant", "ours"), ("flags", "loop flags"), ("reference_img_s", "reference img/s"),
               ("ours_img_s", "ours img/s"), ("speedup", "speed-up"), ("speedup_cpu_time", "speed-up (CPU time)"),
               ("reference_step_s", "ref step s"),
               ("ours_step_s", "ours step s"), ("reference_cpu_s", "ref CPU s"), ("ours_cpu_s", "ours CPU s"),
               ("warmup_s", f"first {args.warmup} steps s")]
    table = bu.format_table(rows, columns)
    print(table)
    targets = []
    eligible = [r for r in rows if not VARIANTS[r["variant"]][1]]  # what-ifs are not what the loop does
    if eligible:
        best = max(eligible, key=lambda r: r["speedup"])
        targets.append(bu.target_line(f"training step speed-up on {kind} (best: {best['variant']})", best["speedup"],
                                      TARGETS[kind], unit="x", higher_is_better=True))
        print(f"target {targets[0]['target']}: {best['speedup']:.2f}x (>= {TARGETS[kind]}x) -> "
              f"{'holds' if targets[0]['holds'] else 'MISSED'}")
    info["load_average_at_end"] = bu.load_average()
    payload = {"benchmark": "training_throughput", "machine": info, "device": args.device,
               "settings": vars(args) | {"output": None}, "rows": rows, "workers": results, "targets": targets,
               "table": table}
    if not args.no_save:
        name = "training_throughput" if kind == "cpu" else "training_throughput_cuda"
        path = bu.save_results(name, payload, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
