"""Plot the TensorBoard scalars of one or more training runs to a PNG (losses, learning rates, validation metrics).

    python -m train.tools.plot_losses runs/cyclegan                       # -> runs/cyclegan/losses.png
    python -m train.tools.plot_losses runs/sagan_ce runs/sagan_wgan --out compare.png \
        --tags 'loss/(generator|discriminator)'

One panel per tag; with several runs, one line per run. Steps logged twice (a run resumed from a checkpoint repeats the
steps after it) keep the value written last. ``--smoothing`` draws TensorBoard's exponential smoothing over the raw
values (shown faint).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path


def find_event_dirs(run: Path) -> list[Path]:
    """Folders holding TensorBoard event files under ``run`` (its ``logs/`` if there is one)."""
    root = run / "logs" if (run / "logs").is_dir() else run
    return sorted({path.parent for path in root.rglob("events.out.tfevents.*")})


def read_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value)]`` sorted by step; for a step logged more than once, the latest write wins."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    latest: dict[str, dict[int, tuple[float, float]]] = {}
    for folder in find_event_dirs(run):
        accumulator = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            per_step = latest.setdefault(tag, {})
            for event in accumulator.Scalars(tag):
                if event.step not in per_step or event.wall_time >= per_step[event.step][0]:
                    per_step[event.step] = (event.wall_time, event.value)
    return {tag: sorted((step, value) for step, (_, value) in per_step.items()) for tag, per_step in latest.items()}


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average."""
    if weight <= 0:
        return list(values)
    smoothed, last, debias = [], 0.0, 0.0
    for value in values:
        last = last * weight + (1 - weight) * value
        debias = debias * weight + (1 - weight)
        smoothed.append(last / debias)
    return smoothed


def plot(runs: list[Path], out: Path, tags: str | None = None, smoothing: float = 0.6, log_y: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = {run: read_scalars(run) for run in runs}
    pattern = re.compile(tags) if tags else None
    all_tags = sorted({tag for per_run in scalars.values() for tag in per_run
                       if tag != "epoch" and (pattern is None or pattern.search(tag))},
                      key=lambda tag: (not tag.startswith("loss/"), not tag.startswith("eval/"), tag))
    if not all_tags:
        where = ", ".join(str(run) for run in runs)
        raise SystemExit(f"error: no TensorBoard scalars{' matching ' + tags if tags else ''} under {where}")
    columns = min(3, len(all_tags))
    rows = math.ceil(len(all_tags) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for axis, tag in zip(axes.flat, all_tags):
        for index, run in enumerate(runs):
            points = scalars[run].get(tag)
            if not points:
                continue
            steps, values = zip(*points)
            color = f"C{index}"
            label = run.name if len(runs) > 1 else None
            if smoothing > 0 and len(values) > 2:
                axis.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
                axis.plot(steps, smooth(values, smoothing), color=color, linewidth=1.5, label=label)
            else:
                axis.plot(steps, values, color=color, linewidth=1.5, marker="." if len(values) < 30 else None,
                          label=label)
        axis.set_title(tag, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if log_y and tag.startswith("loss/"):
            axis.set_yscale("symlog", linthresh=1e-3)
        if len(runs) > 1:
            axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(all_tags):]:
        axis.set_visible(False)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (their logs/ is searched for event files)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <first run>/losses.png)")
    parser.add_argument("--tags", help="only tags matching this regular expression")
    parser.add_argument("--smoothing", type=float, default=0.6, help="0 to 0.99 (default 0.6; 0: raw values only)")
    parser.add_argument("--log-y", action="store_true", help="symmetric-log y axis for the losses")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not run.is_dir():
            parser.error(f"{run}: no such run folder")
    if not 0.0 <= args.smoothing < 1.0:
        parser.error("--smoothing must be in [0, 1)")
    out = plot(args.runs, args.out or args.runs[0] / "losses.png", args.tags, args.smoothing, args.log_y)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
