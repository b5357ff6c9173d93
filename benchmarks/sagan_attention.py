"""What-if for expr_models/models/layers.py (not changed here): the SA-GAN generator with its self-attention rewritten
so that ``scaled_dot_product_attention`` can take its fused CPU kernel.

    python benchmarks/sagan_attention.py

``SelfAttention2d`` calls SDPA with queries/keys of C/8 channels, values of C channels and views whose last dimension
is not contiguous; SDPA then falls back to its unfused math path (bmm, softmax, and NaN checks over the whole
HW x HW matrix: 4096 x 4096 at the 64x64 level of a 128 px SA-GAN). The what-if zero-pads queries and keys to C
channels (the dot products are unchanged), makes the values contiguous and passes SAGAN's scale explicitly. It is
applied by patching the class in this process only; outputs are compared with the current code's.

Anchor: the current ``SelfAttention2d``, same model, same process. Medians of CPU time on one thread (the editor's
default), fp32 and bf16 autocast, at 128 and 64 px, random weights with the attention gates opened.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import bench_utils as bu


def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    """SelfAttention2d.forward with q/k zero-padded to the value width and contiguous values (the what-if)."""
    batch, channels, height, width = x.shape
    query = self.query(x).flatten(2).transpose(1, 2)
    key = self.key(x).flatten(2).transpose(1, 2)
    value = self.value(x).flatten(2).transpose(1, 2).contiguous()
    key_channels = query.shape[-1]
    query = F.pad(query, (0, channels - key_channels))
    key = F.pad(key, (0, channels - key_channels))
    attended = F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None],
                                              scale=key_channels ** -0.5)[:, 0]
    return x + self.gamma * attended.transpose(1, 2).reshape(batch, channels, height, width)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", nargs="+", type=int, default=[128, 64])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    from expr_models.models import layers
    from expr_models.models.sagan import SAGANConfig, SAGANModel

    torch.set_num_threads(args.threads)
    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    current = layers.SelfAttention2d.forward
    rows = []
    try:
        for resolution in args.resolutions:
            torch.manual_seed(0)
            config = SAGANConfig(**dict(bu.DEFAULT_SAGAN, resolution=resolution), with_discriminator=False)
            model = SAGANModel(config).eval()
            for name, parameter in model.named_parameters():
                if name.endswith("gamma"):
                    parameter.data.fill_(0.1)
            pixels = torch.rand(1, 1, resolution, resolution) * 2 - 1
            labels = model.labels_for("happy", 1)
            outputs, times = {}, {}
            for variant, forward in (("current", current), ("fused", fused_forward)):
                layers.SelfAttention2d.forward = forward
                for precision in ("fp32", "bf16"):
                    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                                enabled=precision == "bf16"):
                        stats = bu.measure(lambda: model.generate(pixels, to=labels), args.repeats, warmup=2)
                        outputs[(variant, precision)] = model.generate(pixels, to=labels).float()
                    times[(variant, precision)] = stats
            layers.SelfAttention2d.forward = current
            for precision in ("fp32", "bf16"):
                before, after = times[("current", precision)], times[("fused", precision)]
                diff = (outputs[("fused", precision)] - outputs[("current", precision)]).abs().max()
                rows.append({"resolution": resolution, "precision": precision,
                             "current_ms": 1000 * before["cpu_median_s"], "fused_ms": 1000 * after["cpu_median_s"],
                             "speedup": before["cpu_median_s"] / after["cpu_median_s"],
                             "current_wall_ms": 1000 * before["median_s"], "fused_wall_ms": 1000 * after["median_s"],
                             "max_abs_output_diff": float(diff)})
    finally:
        layers.SelfAttention2d.forward = current
    table = bu.format_table(rows, [("resolution", "px"), ("precision", "precision"),
                                   ("current_ms", "current ms (CPU)"), ("fused_ms", "fused ms (CPU)"),
                                   ("speedup", "speed-up"), ("max_abs_output_diff", "max |diff|")])
    print(table)
    if not args.no_save:
        path = bu.save_results("sagan_attention", {"benchmark": "sagan_attention", "machine": info,
                                                   "settings": vars(args) | {"output": None}, "rows": rows,
                                                   "table": table}, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
