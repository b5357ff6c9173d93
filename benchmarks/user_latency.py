"""The time a user waits, end to end, against the edit alone in the same run.

    python benchmarks/user_latency.py [--photos 11] [--only cli]

CLI: ``python -m expr_models edit`` on N copies of a 1 MP JPEG portrait (Grace Hopper, from matplotlib), PNG out:
seconds per photo after the first, i.e. (time for N+1 photos - time for 1 photo) / N, each run in this process
with the models loaded afresh, so decode, detection, edit, PNG encoding and writing are all counted. The anchor is
``editor.edit(path)`` alone (decode, detect, edit, no encoding), median, same process.

Writes benchmarks/results/user_latency.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import bench_utils as bench

CLI_TARGET_S = 0.2


def cli_seconds_per_photo(models: Path, photo: Path, count: int, work: Path) -> dict:
    from expr_models.__main__ import main

    runs = iter(range(1_000))

    def run(n: int) -> float:
        inputs = work / f"in{next(runs)}"
        inputs.mkdir()
        for index in range(n):
            shutil.copy(photo, inputs / f"photo{index:03d}.jpg")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["edit", str(inputs), "--models", str(models), "--out", str(inputs.with_name(inputs.name + "-out"))])
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"the CLI failed on the benchmark photos (exit {code})")
        return seconds

    run(1)  # warm the file cache and the libraries' first-call costs
    one = run(1)
    many = run(count + 1)
    return {"photos": count + 1, "seconds_one_photo_run": one, "seconds_many_photo_run": many,
            "per_photo_after_first_s": (many - one) / count}


def edit_alone(models: Path, photo: Path) -> dict:
    from expr_models.pipeline import ExpressionEditor

    editor = ExpressionEditor.from_pretrained(models)
    return bench.measure(lambda: editor.edit(photo, method="cyclegan", target="happy"), repeats=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10, help="photos after the first in the CLI run (default 10)")
    args = parser.parse_args()

    info = bench.machine()
    print(bench.machine_line(info))
    models = bench.REPO_ROOT / "checkpoints"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photo = bench.encode_jpeg(bench.photo_of_size(1.0), work / "portrait.jpg")
        anchor = edit_alone(models, photo)
        cli = cli_seconds_per_photo(models, photo, args.photos, work)

    per_photo = cli["per_photo_after_first_s"]
    rows = [{"measure": "editor.edit(path) alone, median", "seconds": anchor["median_s"], "ratio": 1.0},
            {"measure": "CLI, 1 MP JPEG in, PNG out, per photo after the first", "seconds": per_photo,
             "ratio": per_photo / anchor["median_s"]}]
    print(bench.format_table(rows, [("measure", "measure"), ("seconds", "seconds"), ("ratio", "÷ edit alone")]))
    target = bench.target_line("CLI seconds per photo after the first (CycleGAN, 1 MP JPEG -> PNG)", per_photo,
                               CLI_TARGET_S)
    print(f"target: {target['target']} <= {CLI_TARGET_S} s: {target['measured']} s, "
          f"{'holds' if target['holds'] else 'MISSED'} ({target['margin']})")
    path = bench.save_results("user_latency", {"machine": info, "edit_alone": anchor, "cli": cli,
                                               "targets": [target]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
