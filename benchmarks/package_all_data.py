"""Package all five sources from ../shared/data into prepared/<source> and print the wall time.

    python benchmarks/package_all_data.py [--data-root ../shared/data] [--out prepared]

Runs each source through the same code as ``python -m train.tools.prepare_data`` (build, save_to_disk, dataset card).
Skips cleanly (exit 0) where the data folder is absent. Budget: under 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("jaffe", "fei", "fer2013", "ckplus", "wider")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "prepared")
    args = parser.parse_args()
    if not args.data_root.is_dir():
        print(f"skip: {args.data_root} not found, nothing to package")
        return 0

    started = time.perf_counter()
    from expr_models.data import SOURCE_DIRS
    from train.tools.prepare_data import main as prepare

    imported = time.perf_counter()
    timings = {}
    for source in SOURCES:
        t0 = time.perf_counter()
        code = prepare(["--source", source, "--root", str(args.data_root / SOURCE_DIRS[source]),
                        "--out", str(args.out / source)])
        timings[source] = time.perf_counter() - t0
        if code != 0:
            print(f"{source}: prepare_data failed with exit code {code}")
            return code
    total = time.perf_counter() - started

    print(f"\nimports {imported - started:.1f} s")
    for source, seconds in timings.items():
        print(f"{source:8s} {seconds:6.1f} s")
    print(f"total    {total:6.1f} s (wall, all five sources, including imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
