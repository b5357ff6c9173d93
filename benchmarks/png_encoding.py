"""What writing a lossless PNG costs the CLI: ``expr_models.io.save_image`` (OpenCV's libpng, the Paeth filter on
every row, zlib level 1 run-length coding) against Pillow at the settings the project used before (zlib level 1,
run-length coding, Pillow's own choice among the five filters on each row), alternating in one run.

    python benchmarks/png_encoding.py [--repeats 15]

Photos: scikit-image's astronaut and matplotlib's Grace Hopper, each at 1 MP. The CLI encodes one photo while it
edits the next, so on a two-core machine the encoder's CPU time is taken from the edits'. Prints median wall and CPU
milliseconds, file sizes and the ratios; writes benchmarks/results/png_encoding.json.
"""

from __future__ import annotations

import argparse
import io

from PIL import Image

import bench_utils as bench
from expr_models.io import save_image


def pillow_level_one(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1, compress_type=3)  # zlib level 1, Z_RLE
    return buffer.getvalue()


def project_writer(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    save_image(image, buffer, "png", metadata={})
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    info = bench.machine()
    print(bench.machine_line(info))
    writers = {"Pillow, level 1, per-row filter choice": pillow_level_one, "save_image (OpenCV, Paeth)": project_writer}
    rows = []
    for name, pixels in (("astronaut", bench.astronaut()), ("grace_hopper", bench.grace_hopper())):
        image = Image.fromarray(bench.photo_of_size(1.0, pixels))
        timings = {writer: {"walls": [], "cpus": []} for writer in writers}
        for _ in range(args.repeats):  # alternating, so that the machine's mood falls on both alike
            for writer, encode in writers.items():
                once = bench.measure(lambda encode=encode: encode(image), repeats=1, warmup=0)
                timings[writer]["walls"].append(once["median_s"])
                timings[writer]["cpus"].append(once["cpu_median_s"])
        for writer, encode in writers.items():
            result = bench.summary(timings[writer]["walls"], timings[writer]["cpus"])
            rows.append({"photo": f"{name} {image.width}x{image.height}", "writer": writer,
                         "wall_ms": 1000 * result["median_s"], "cpu_ms": 1000 * result["cpu_median_s"],
                         "megabytes": len(encode(image)) / 1e6})
        old, new = rows[-2], rows[-1]
        for key in ("wall_ms", "cpu_ms", "megabytes"):
            new[f"{key}_ratio"] = new[key] / old[key]
    print(bench.format_table(rows, [("photo", "photo"), ("writer", "writer"), ("wall_ms", "wall ms"),
                                    ("cpu_ms", "CPU ms"), ("megabytes", "MB"), ("wall_ms_ratio", "wall / Pillow"),
                                    ("cpu_ms_ratio", "CPU / Pillow"), ("megabytes_ratio", "size / Pillow")]))
    path = bench.save_results("png_encoding", {"machine": info, "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
