"""How many frames the Live tab's plumbing can show at all: a bare Gradio page with the Space's live components (a
streaming webcam image, a JPEG output, the Space's ``STREAM_EVERY``) whose handler returns each frame after a fixed
amount of work, in the same headless Chromium harness as ``user_latency.py --only browser``.

    python benchmarks/live_transport.py [--work-ms 0 50] [--sleep-ms 50] [--seconds 10]

``--work-ms``: milliseconds the handler computes (one core busy, as an edit on one thread); ``--sleep-ms``: milliseconds
it waits without computing. Against the Space's own rate (``user_latency.py``) it says how much of a frame's time is
the page, Gradio and the browser sharing the machine's cores, and how much the edit. Needs Gradio, Playwright and
Chromium; skips without. Writes benchmarks/results/live_transport.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import bench_utils as bench


def serve(port: int, work_ms: float, sleep_ms: float) -> None:
    """The bare page (run in a process of its own, so the handler's work does not hold the measuring process)."""
    import gradio as gr

    sys.path.insert(0, str(bench.REPO_ROOT))  # the Space's package sits beside benchmarks/
    from space.ui import STREAM_EVERY

    def live(frame):
        if sleep_ms:
            time.sleep(sleep_ms / 1000)
        end = time.perf_counter() + work_ms / 1000
        while time.perf_counter() < end:
            pass
        return frame

    with gr.Blocks() as demo:
        with gr.Tab("Live webcam"), gr.Row():
            frames = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", elem_id="live-input")
            shown = gr.Image(label="Edited", format="jpeg", interactive=False, elem_id="live-output")
        frames.stream(live, inputs=frames, outputs=shown, stream_every=STREAM_EVERY, concurrency_limit=1,
                      show_progress="hidden")
    demo.launch(server_name="127.0.0.1", server_port=port)


def shown_fps(work_ms: float, sleep_ms: float, seconds: float) -> dict:
    from user_latency import browser_fps

    port = bench.free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(work_ms), str(sleep_ms)],
                              cwd=bench.REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            if server.poll() is not None:
                raise RuntimeError(f"the bare page exited with code {server.returncode}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as work:
            return {"work_ms": work_ms, "sleep_ms": sleep_ms, **browser_fps(url, Path(work), seconds)}
    finally:
        server.kill()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--sleep-ms", type=float, nargs="*", default=[50.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of shown frames counted")
    args = parser.parse_args()
    try:
        import gradio  # noqa: F401
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError as error:
        print(f"skipped: {error}")
        return
    info = bench.machine()
    print(bench.machine_line(info))
    rows = [shown_fps(work, 0.0, args.seconds) for work in args.work_ms]
    rows += [shown_fps(0.0, wait, args.seconds) for wait in args.sleep_ms]
    if any("skipped" in row for row in rows):
        print(f"skipped: {rows[0].get('skipped')}")
        return
    print(bench.format_table(rows, [("work_ms", "handler computes, ms"), ("sleep_ms", "handler waits, ms"),
                                    ("fps_shown", "frames shown per second")]))
    print(f"wrote {bench.save_results('live_transport', {'machine': info, 'rows': rows})}")


if __name__ == "__main__":
    main()
