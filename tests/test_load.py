"""Load: the Space as deployed (``python app.py``, its own process) with tiny random checkpoints, on localhost only,
under 20 concurrent gradio_client clients x 5 edits each.

Every request must succeed, the server's memory must level off (RSS after the load, compared with after a warm-up,
grows by less than a generous bound), and the latency percentiles are printed and written with the machine's
description to benchmarks/results/load.json. Bounded: 100 edits of a 512 x 512 photo, a few minutes at most.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "load.json"
PHOTO = REPO / "space" / "examples" / "astronaut.jpg"  # 512 x 512, one face
CLIENTS, REQUESTS_PER_CLIENT = 20, 5
WARM_UP_REQUESTS = 4
MAX_RSS_GROWTH_MB = 300  # after the warm-up; generous: the allocator keeps freed pages, caches fill up
REQUEST_TIMEOUT_S = 180


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gb"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    import gradio
    import torch

    info.update(torch=torch.__version__, gradio=gradio.__version__, gradio_client=gradio_client.__version__)
    return info


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q  # linear interpolation between the closest ranks
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python app.py`` on a free localhost port, as a Space runs it, with tiny random checkpoints."""
    from bench_utils import space_server
    from test_space import make_tiny_checkpoints

    models = make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with space_server(models, log_path, extra_env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
                      timeout=180) as (process, url):
        yield process, url, log_path


def edit(client: Client) -> float:
    """One edit, as a visitor's script sends it; returns the seconds it took, upload and download included."""
    started = time.perf_counter()
    job = client.submit(handle_file(PHOTO), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    edited, *_, details = job.result(timeout=REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    assert Path(edited).is_file() and details["faces"], details
    return elapsed


@pytest.mark.slow
def test_twenty_concurrent_clients(server):
    from space import ui  # the settings app.py reads from the same environment

    process, url, log_path = server
    rss = {"started": rss_mb(process.pid)}
    load_before = os.getloadavg()

    warm = Client(url, verbose=False)
    for _ in range(WARM_UP_REQUESTS):
        edit(warm)
    rss["after_warm_up"] = rss_mb(process.pid)

    clients = [Client(url, verbose=False) for _ in range(CLIENTS)]
    latencies: list[float] = []
    failures: list[str] = []
    peak = {"rss": rss["after_warm_up"]}
    lock = threading.Lock()
    done = threading.Event()

    def visitor(client: Client) -> None:
        for _ in range(REQUESTS_PER_CLIENT):
            try:
                seconds = edit(client)
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                latencies.append(seconds)

    def sample_memory() -> None:
        while not done.wait(0.5):
            peak["rss"] = max(peak["rss"], rss_mb(process.pid))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=visitor, args=(client,), daemon=True) for client in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CLIENTS * REQUESTS_PER_CLIENT * 10)
    wall = time.perf_counter() - started
    done.set()
    sampler.join(timeout=5)
    hung = sum(thread.is_alive() for thread in threads)
    rss["after_load"] = rss_mb(process.pid)
    rss["peak_during_load"] = max(peak["rss"], rss["after_load"])
    load_after = os.getloadavg()

    total = CLIENTS * REQUESTS_PER_CLIENT
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "test": "tests/test_load.py::test_twenty_concurrent_clients",
        "conditions": {
            "server": f"python app.py: {ui.CONCURRENCY} requests at a time, up to {ui.QUEUE_SIZE} waiting; "
                      "OMP_NUM_THREADS=1",
            "models": "tiny random checkpoints (tests/test_space.py: CycleGAN/SA-GAN/classifier at 32 px)",
            "request": "/edit cyclegan -> happy, intensity 1, space/examples/astronaut.jpg (512 x 512, 1 face); "
                       "latency = upload + queue + edit + download, measured by the client",
            "clients": CLIENTS, "requests_per_client": REQUESTS_PER_CLIENT, "warm_up_requests": WARM_UP_REQUESTS,
            "network": "localhost only",
        },
        "machine": {**machine(), "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in load_after]},
        "requests": total, "succeeded": len(latencies), "failed": len(failures), "hung_clients": hung,
        "wall_seconds": round(wall, 2), "throughput_per_second": round(len(latencies) / wall, 3),
        "latency_seconds": {} if not latencies else {
            "p50": round(percentile(latencies, 0.50), 3), "p95": round(percentile(latencies, 0.95), 3),
            "mean": round(statistics.mean(latencies), 3), "min": round(min(latencies), 3),
            "max": round(max(latencies), 3)},
        "server_rss_mb": {key: round(value, 1) for key, value in rss.items()},
        "first_failures": failures[:5],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{len(latencies)}/{total} edits in {wall:.1f} s; latency p50 {result['latency_seconds'].get('p50')} s, "
          f"p95 {result['latency_seconds'].get('p95')} s; server RSS {result['server_rss_mb']} MB; "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}; written to {RESULTS.relative_to(REPO)}")

    assert process.poll() is None, f"the server died:\n{log_path.read_text()[-3000:]}"
    assert hung == 0, f"{hung} clients still waiting after the time limit"
    assert not failures, f"{len(failures)} of {total} requests failed, e.g. {failures[:3]}"
    growth = rss["after_load"] - rss["after_warm_up"]
    assert growth < MAX_RSS_GROWTH_MB, f"server RSS grew by {growth:.0f} MB under load ({rss})"
    # Still serving after the load.
    assert edit(warm) > 0


def test_beyond_the_queue_callers_are_told_at_once_and_the_server_goes_on(tmp_path, monkeypatch):
    """Over capacity (here a queue of 2, and edits held for 2 s), the extra callers get "Queue is full" at once,
    the queued ones are all served, and the server answers afterwards."""
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    from space import ui
    from test_space import free_port, make_tiny_checkpoints

    monkeypatch.setattr(ui, "QUEUE_SIZE", 2)
    original = ui.run_edit

    def slow_edit(*args, **kwargs):
        time.sleep(2)
        return original(*args, **kwargs)

    monkeypatch.setattr(ui, "run_edit", slow_edit)
    demo = ui.build_demo(models_dir=make_tiny_checkpoints(tmp_path))
    ui.serve(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        jobs = [client.submit(handle_file(PHOTO), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
                for _ in range(10)]
        served, refused = 0, 0
        for job in jobs:
            try:
                edited, *_ = job.result(timeout=120)
            except (QueueError, AppError) as error:
                assert "Queue is full" in str(error), error
                refused += 1
                continue
            with Image.open(edited) as image:
                image.load()  # the whole file arrived
            served += 1
        assert served >= 2 and refused >= 1 and served + refused == len(jobs)
        monkeypatch.setattr(ui, "run_edit", original)
        assert edit(client) > 0
    finally:
        demo.close()
