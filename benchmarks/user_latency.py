"""The time a user waits, end to end, against the edit alone in the same run.

    python benchmarks/user_latency.py [--photos 10] [--only cli space live browser] [--requests 15] [--models DIR]

CLI: ``python -m expr_models edit`` on N copies of a 1 MP JPEG portrait (Grace Hopper, from matplotlib), PNG out:
seconds per photo after the first, i.e. (time for N+1 photos - time for 1 photo) / N, each run in this process
with the models loaded afresh, so decode, detection, edit, PNG encoding and writing are all counted. The anchor is
``editor.edit(path)`` alone (decode, detect, edit, no encoding), median, same process.

Space: ``python app.py`` (committed checkpoints) on a free localhost port in a subprocess; the median round trip of
``/edit`` (a fresh session each time, so nothing from an upload is reused: upload, decode, detect, edit, readings,
views, download of every returned file), of ``/edit`` after ``/detect`` in the same session (what the page does:
the upload's detection is reused), of ``/detect`` and of ``/download`` (the full-size PNG), all over
``gradio_client``; beside them ``editor.detect`` and ``editor.edit`` alone in this process and the editor's own
``timings.total`` reported by the Space.

Live: the LiveTracker loop over 640x480 frames with one face (CycleGAN), in this process: frames per second, beside
the edit alone per frame (``editor.edit(Detection, read_expressions=False)``: the mesh read twice, as for a photo)
and detecting on every frame, the three taking turns in three rounds. Browser
(needs Playwright and Chromium): the Space's Live tab in headless Chromium with a fake camera (a .y4m of the same
picture); edited frames actually shown per second.

Writes benchmarks/results/user_latency.json (the parts run; the others are kept from the last run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import bench_utils as bench

CLI_TARGET_S = 0.2
EDIT_TARGET_S = 0.5
DETECT_TARGET_S = 0.15
LIVE_TARGET_FPS = 8.0
PARTS = ("cli", "space", "live", "browser")


def cli_seconds_per_photo(models: Path, photo: Path, count: int, work: Path, target: str = "happy",
                          repeats: int = 3) -> dict:
    """Seconds per photo after the first: (a run on ``count`` + 1 copies less a run on one) / ``count``, the median
    of ``repeats`` such pairs (one pair swings by 20 ms on the 2-core machine)."""
    from expr_models.cli import main

    runs = iter(range(1_000))

    def run(n: int) -> float:
        inputs = work / f"in{next(runs)}"
        inputs.mkdir()
        for index in range(n):
            shutil.copy(photo, inputs / f"photo{index:03d}.jpg")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["edit", str(inputs), "--models", str(models), "--to", target,
                         "--out", str(inputs.with_name(inputs.name + "-out"))])
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"the CLI failed on the benchmark photos (exit {code})")
        return seconds

    run(1)  # warm the file cache and the libraries' first-call costs
    pairs = [(run(1), run(count + 1)) for _ in range(repeats)]
    per_photo = [(many - one) / count for one, many in pairs]
    return {"photos": count + 1, "seconds_one_photo_runs": [one for one, _ in pairs],
            "seconds_many_photo_runs": [many for _, many in pairs], "per_photo_each_pair_s": per_photo,
            "per_photo_after_first_s": statistics.median(per_photo)}


def edit_alone(models: Path, photo: Path) -> dict:
    from expr_models.pipeline import ExpressionEditor

    editor = ExpressionEditor.from_pretrained(models)
    return bench.measure(lambda: editor.edit(photo, method="cyclegan", target="happy"), repeats=9)


# ---------------------------------------------------------------------------------------------------------------------
# The Space over gradio_client
# ---------------------------------------------------------------------------------------------------------------------

def round_trips(call, repeats: int) -> dict:
    call()  # warm-up: the first request of a session, the libraries' first calls
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        walls.append(time.perf_counter() - start)
    return bench.summary(walls)


def space_round_trips(url: str, photo: Path, repeats: int) -> dict:
    from gradio_client import Client, handle_file

    edit_args = ("cyclegan", "happy", 1.0, None, 20)
    totals: list[float] = []

    def cold_edit():  # a visitor's script: one /edit in a new session, nothing from an upload to reuse
        client = Client(url, verbose=False)
        details = client.predict(handle_file(photo), *edit_args, api_name="/edit")[-1]
        totals.append(details["timings"]["total"])

    from PIL import Image

    blank = photo.with_name("blank.jpg")  # 64 px, no face: a queued request with almost no work in it
    Image.new("RGB", (64, 64), "grey").save(blank)
    page = Client(url, verbose=False)  # the page: upload (/detect), then edit the same photo, then download
    page.predict(handle_file(photo), api_name="/detect")

    # Client() itself (fetching the app's config) is not part of a request: time it apart and take it off.
    connect = round_trips(lambda: Client(url, verbose=False), repeats)
    cold = round_trips(cold_edit, repeats)
    cold_edit_s = [wall - connect["median_s"] for wall in (cold["median_s"], cold["q1_s"], cold["q3_s"])]
    return {
        "client_connect": connect,
        "edit_new_session": {**cold, "median_s": cold_edit_s[0], "q1_s": cold_edit_s[1], "q3_s": cold_edit_s[2],
                             "note": "connect time (client_connect median) subtracted"},
        "edit_after_detect": round_trips(lambda: page.predict(handle_file(photo), *edit_args, api_name="/edit"),
                                         repeats),
        "detect": round_trips(lambda: page.predict(handle_file(photo), api_name="/detect"), repeats),
        "download": round_trips(lambda: page.predict(api_name="/download"), max(3, repeats // 3)),
        # The floors: gradio_client and the server with no model, no file and no queue; and a queued request with
        # a file in and out and almost no work (detection on a blank 64 px image).
        "methods": round_trips(lambda: page.predict(api_name="/methods"), repeats),
        "detect_blank": round_trips(lambda: page.predict(handle_file(blank), api_name="/detect"), repeats),
        "editor_timings_total_median_s": statistics.median(totals),
    }


def detect_alone(models: Path, photo: Path) -> dict:
    from expr_models.pipeline import ExpressionEditor

    editor = ExpressionEditor.from_pretrained(models)
    return bench.measure(lambda: editor.detect(photo), repeats=9)


# ---------------------------------------------------------------------------------------------------------------------
# Live mode
# ---------------------------------------------------------------------------------------------------------------------

def camera_picture() -> np.ndarray:
    from fake_camera import camera_picture as picture  # the browser test's camera: astronaut on 640 x 480

    return picture()


def noisy_frames(picture: np.ndarray, count: int = 30, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)  # a webcam's frames differ by sensor noise
    return [np.clip(picture + rng.normal(0, 1.5, picture.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def live_loop(models: Path, frames: int) -> dict:
    from PIL import Image

    from expr_models.faces.live import LiveTracker
    from expr_models.pipeline import Detection, ExpressionEditor

    editor = ExpressionEditor.from_pretrained(models)
    stream = noisy_frames(camera_picture())
    tracker = LiveTracker(editor)

    boxes = editor.detect_faces(stream[0])
    loops = {
        "tracker_fps": lambda frame: tracker.edit(frame, "cyclegan", "happy"),
        "edit_alone_fps": lambda frame: editor.edit(Detection(Image.fromarray(frame), frame, boxes), "cyclegan",
                                                    "happy", read_expressions=False),
        "detect_every_frame_fps": lambda frame: editor.edit(frame, "cyclegan", "happy", read_expressions=False),
    }
    for fn in loops.values():
        for frame in stream[:3]:
            fn(frame)
    # In rounds of a third of the frames each, taking turns, so that the machine's changing speed falls on all three.
    seconds = dict.fromkeys(loops, 0.0)
    rounds, done = 3, 0
    for round_number in range(rounds):
        count = frames * (round_number + 1) // rounds - frames * round_number // rounds
        for name, fn in loops.items():
            start = time.perf_counter()
            for index in range(done, done + count):
                fn(stream[index % len(stream)])
            seconds[name] += time.perf_counter() - start
        done += count
    return {"frame_size": [640, 480], "frames": frames, "faces": len(boxes),
            **{name: frames / seconds[name] for name in loops},
            "tracker_detections": f"{tracker.detections} of {tracker.frames} frames"}


def browser_fps(url: str, work: Path, seconds: float) -> dict:
    """Edited frames the Space's Live tab shows per second in headless Chromium with a fake camera."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    from fake_camera import CHROMIUM_ARGS, chromium_path, write_y4m

    executable = chromium_path()
    if executable is None:
        return {"skipped": "Chromium is not installed"}
    video = work / "camera.y4m"
    write_y4m(video, camera_picture())
    args = CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                            f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"]).new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("tab", name="Live webcam").click()
        page.get_by_text("Click to Access Webcam").click()
        page.locator("#live-input").get_by_role("button", name="capture photo").click()
        page.wait_for_function("() => { const i = document.querySelector('#live-output img'); return i && i.src; }")
        page.wait_for_timeout(2000)  # past the first frames (the models' first calls)
        page.evaluate("""() => { window.shown = []; const root = document.querySelector('#live-output');
            new MutationObserver(() => { const img = root.querySelector('img');
                if (img && img.src && window.shown[window.shown.length - 1] !== img.src) window.shown.push(img.src); })
              .observe(root, {subtree: true, childList: true, attributes: true}); }""")
        page.wait_for_timeout(seconds * 1000)
        shown = page.evaluate("() => window.shown.length")
        browser.close()
    return {"seconds": seconds, "frames_shown": shown, "fps_shown": shown / seconds}


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------

def verdict(target: dict) -> str:
    return "holds" if target["holds"] else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10, help="photos after the first in the CLI run (default 10)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default all)")
    parser.add_argument("--requests", type=int, default=15, help="round trips per Space endpoint (default 15)")
    parser.add_argument("--frames", type=int, default=90, help="frames per live-loop measurement (default 90)")
    parser.add_argument("--browser-seconds", type=float, default=15.0, help="seconds of shown frames counted")
    parser.add_argument("--models", type=Path, default=bench.REPO_ROOT / "checkpoints",
                        help="checkpoint folder for every part (default: the committed checkpoints)")
    args = parser.parse_args()

    info = bench.machine()
    print(bench.machine_line(info))
    models = args.models
    results_path = bench.RESULTS_DIR / "user_latency.json"
    previous = json.loads(results_path.read_text()) if results_path.is_file() else {}
    payload = {key: previous[key] for key in PARTS + ("edit_alone", "detect_alone") if key in previous}
    payload.update(machine=info, parts_run=args.only, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photo = bench.encode_jpeg(bench.photo_of_size(1.0), work / "portrait.jpg")
        if {"cli", "space"} & set(args.only):
            payload["edit_alone"] = edit_alone(models, photo)
            payload["detect_alone"] = detect_alone(models, photo)
        if "cli" in args.only:
            payload["cli"] = cli_seconds_per_photo(models, photo, args.photos, work)
        if {"space", "browser"} & set(args.only):
            with bench.space_server(models, work / "space.log") as (_, url):
                if "space" in args.only:
                    payload["space"] = space_round_trips(url, photo, args.requests)
                if "browser" in args.only:
                    payload["browser"] = browser_fps(url, work, args.browser_seconds)
        if "live" in args.only:
            payload["live"] = live_loop(models, args.frames)

    edit = payload.get("edit_alone", {}).get("median_s")
    detect = payload.get("detect_alone", {}).get("median_s")
    targets = []
    if "cli" in payload:
        per_photo = payload["cli"]["per_photo_after_first_s"]
        rows.append({"measure": "CLI, 1 MP JPEG in, PNG out, per photo after the first", "value": per_photo,
                     "anchor": edit})
        targets.append(bench.target_line("CLI seconds per photo after the first (CycleGAN, 1 MP JPEG -> PNG)",
                                         per_photo, CLI_TARGET_S))
    if "space" in payload:
        space = payload["space"]
        rows += [
            {"measure": "Space /edit round trip, new session, median", "value": space["edit_new_session"]["median_s"],
             "anchor": edit},
            {"measure": "Space /edit after /detect (the page), median", "value": space["edit_after_detect"]["median_s"],
             "anchor": edit},
            {"measure": "the Space's own timings.total, median", "value": space["editor_timings_total_median_s"],
             "anchor": edit},
            {"measure": "Space /detect round trip, median", "value": space["detect"]["median_s"], "anchor": detect},
            {"measure": "Space /download (full-size PNG), median", "value": space["download"]["median_s"]},
            {"measure": "Space /methods round trip (no model, not queued: the floor), median",
             "value": space["methods"]["median_s"]},
            {"measure": "Space /detect of a blank 64 px image (queued floor), median",
             "value": space["detect_blank"]["median_s"]},
        ]
        targets.append(bench.target_line("Space /edit round trip, 1 MP photo, median (new session)",
                                         space["edit_new_session"]["median_s"], EDIT_TARGET_S))
        targets.append(bench.target_line("Space /detect round trip, median", space["detect"]["median_s"],
                                         DETECT_TARGET_S))
    if "live" in payload:
        live = payload["live"]
        rows += [{"measure": "live: LiveTracker loop, 640x480, frames/s", "value": live["tracker_fps"],
                  "anchor": live["edit_alone_fps"]},
                 {"measure": "live: detecting every frame, frames/s", "value": live["detect_every_frame_fps"],
                  "anchor": live["edit_alone_fps"]}]
        targets.append(bench.target_line("live mode, LiveTracker loop at 640x480, one face", live["tracker_fps"],
                                         LIVE_TARGET_FPS, unit="frames/s", higher_is_better=True))
    if "fps_shown" in payload.get("browser", {}):
        rows.append({"measure": "live: frames shown in Chromium (fake camera), frames/s",
                     "value": payload["browser"]["fps_shown"], "anchor": payload.get("live", {}).get("edit_alone_fps")})
        targets.append(bench.target_line("live mode, frames shown in the browser, 640x480, one face",
                                         payload["browser"]["fps_shown"], LIVE_TARGET_FPS, unit="frames/s",
                                         higher_is_better=True))
    print(bench.format_table(rows, [("measure", "measure"), ("value", "seconds or frames/s"),
                                    ("anchor", "edit alone (s, or frames/s)")]))
    for target in targets:
        print(f"target: {target['target']}: {target['measured']} {target['unit']} (limit {target['limit']}), "
              f"{verdict(target)} ({target['margin']})")
    payload["targets"] = targets
    path = bench.save_results("user_latency", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
