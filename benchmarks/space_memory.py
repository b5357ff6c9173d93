"""Peak memory of the Space: ``python app.py`` with every model loaded, after one edit per method.

    python benchmarks/space_memory.py
    python benchmarks/space_memory.py --megapixels 4 --nst-steps 50

Starts the app as a subprocess on a free localhost port (EXPR_MODELS_DIR pointing at a models folder: the committed
checkpoints where present, else random models with the default inference configs plus a default classifier, so
that all four models the Space loads are there), waits until it answers, edits one photo per available method
through ``gradio_client`` (a ~1 MP Grace Hopper JPEG; the astronaut as the NST reference with the UI's default of 50
steps), then reads the app's peak resident memory, ``VmHWM`` in /proc/<pid>/status, and stops it. Child processes,
if the app has any, are listed with their own peaks.

The anchor, measured the same way: a Python process that only imports what the app imports (torch, transformers,
gradio, expr_models), without loading a model or serving anything: the floor any Space of this stack starts from.

Target: the app's peak RSS <= 2 GiB.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import bench_utils as bu

TARGET_MIB = 2048.0
APP_IMPORTS = "import torch, transformers, gradio, expr_models, expr_models.pipeline, space.ui"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(line.split()[1]) / 1024
    return values


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(child) for child in text]
    except OSError:
        pass
    return found


def wait_until_up(url: str, process: subprocess.Popen, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def anchor_peak(env: dict) -> float:
    """Peak RSS of a process that only imports the app's libraries (MiB)."""
    code = f"{APP_IMPORTS}; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], cwd=bu.REPO_ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=1.0, help="size of the photo edited (default 1 MP)")
    parser.add_argument("--nst-steps", type=int, default=50)
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("--models-dir", type=Path, help="checkpoints to serve (default: committed or random defaults)")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    app = bu.REPO_ROOT / "app.py"
    if not app.is_file():
        print(f"SKIP: no {app} (the Space is not in this checkout)")
        return 0
    try:
        from gradio_client import Client, handle_file
    except ImportError:
        print("SKIP: gradio_client is not installed")
        return 0

    info = bu.machine()
    print(f"Machine: {bu.machine_line(info)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="space_memory_") as temp:
        folder = Path(temp)
        if args.models_dir:
            models_dir, sources = args.models_dir, {"all": str(args.models_dir)}
        else:
            models_dir, sources = bu.inference_checkpoints(folder / "models", with_classifier=True)
        print("Models: " + "; ".join(f"{k}: {v}" for k, v in sources.items()), flush=True)
        photo = bu.encode_jpeg(bu.photo_of_size(args.megapixels), folder / "photo.jpg")
        reference = bu.encode_jpeg(bu.astronaut(), folder / "reference.jpg")
        port = free_port()
        env = dict(os.environ, EXPR_MODELS_DIR=str(models_dir), GRADIO_SERVER_NAME="127.0.0.1",
                   GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                   GRADIO_TEMP_DIR=str(folder / "gradio"))
        anchor = anchor_peak(env)
        print(f"Anchor (imports only): peak RSS {anchor:.0f} MiB", flush=True)

        log_path = folder / "app.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, str(app)], cwd=bu.REPO_ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        edits = []
        try:
            url = f"http://127.0.0.1:{port}/"
            startup = wait_until_up(url, process, args.startup_timeout)
            after_start = status_mib(process.pid)
            print(f"App up in {startup:.1f} s: RSS {after_start['VmRSS']:.0f} MiB", flush=True)
            client = Client(url, verbose=False)
            summary = client.predict(api_name="/methods")
            methods = summary.get("methods", {}) if isinstance(summary, dict) else {}
            for method in ("cyclegan", "sagan", "nst"):
                entry = methods.get(method, {})
                if not entry.get("available", False):
                    edits.append({"method": method, "skipped": "not available in the app"})
                    continue
                targets = entry.get("targets") or []
                target = None if method == "nst" else ("happy" if "happy" in targets else targets[-1])
                tick = time.perf_counter()
                client.predict(handle_file(str(photo)), method, target, 1.0,
                               handle_file(str(reference)) if method == "nst" else None, args.nst_steps,
                               api_name="/edit")
                seconds = time.perf_counter() - tick
                memory = status_mib(process.pid)
                edits.append({"method": method, "target": target, "seconds": seconds, "rss_mib": memory["VmRSS"],
                              "peak_mib": memory["VmHWM"]})
                print(f"  {method}: {seconds:.2f} s through the API, peak so far {memory['VmHWM']:.0f} MiB",
                      flush=True)
            final = status_mib(process.pid)
            child_peaks = {}
            for child in children(process.pid):
                try:
                    child_peaks[str(child)] = status_mib(child)
                except OSError:
                    pass
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            log_tail = log_path.read_text()[-3000:] if log_path.exists() else ""

    peak = final["VmHWM"]
    rows = [{"what": "imports only (anchor)", "peak_rss_mib": anchor, "ratio_to_anchor": 1.0},
            {"what": "app started, models loaded", "peak_rss_mib": after_start["VmHWM"],
             "ratio_to_anchor": after_start["VmHWM"] / anchor}]
    rows += [{"what": f"after the {e['method']} edit ({e['seconds']:.2f} s)", "peak_rss_mib": e["peak_mib"],
              "ratio_to_anchor": e["peak_mib"] / anchor} for e in edits if "peak_mib" in e]
    table = bu.format_table(rows, [("what", "app process"), ("peak_rss_mib", "peak RSS (VmHWM) MiB"),
                                   ("ratio_to_anchor", "/ anchor")])
    print(table)
    if child_peaks:
        print(f"Child processes: {child_peaks}")
    target = bu.target_line("Space peak RSS, all models loaded, one edit per method", peak, TARGET_MIB, unit="MiB")
    print(f"target {target['target']}: {peak:.0f} MiB (<= {TARGET_MIB:.0f}) -> "
          f"{'holds' if target['holds'] else 'MISSED'} ({target['margin']})")
    info["load_average_at_end"] = bu.load_average()
    payload = {"benchmark": "space_memory", "machine": info, "models": sources, "settings": vars(args) | {
        "output": None, "models_dir": str(args.models_dir) if args.models_dir else None},
        "anchor_imports_only_mib": anchor, "startup_seconds": startup, "after_start": after_start, "edits": edits,
        "final": final, "children": child_peaks, "rows": rows, "targets": [target], "table": table,
        "app_log_tail": log_tail[-1500:]}
    if not args.no_save:
        path = bu.save_results("space_memory", payload, args.output)
        print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
