"""What every benchmark here shares: the machine's description, timing with medians, peak memory, test photos,
inference checkpoints, a printed table and the JSON in benchmarks/results/.

Every figure is a median over repeated runs, and each script also times an anchor (a reference implementation) in
the same process, so that a ratio stays meaningful on a machine shared with other jobs. Wall-clock times are
reported with the load average before and after, and with the process's CPU time, which a busy machine inflates
much less than the wall clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# The default inference models until trained ones are committed in checkpoints/cyclegan and checkpoints/sagan.
DEFAULT_CYCLEGAN = dict(resolution=128, generator_channels=32, n_downsampling=2, n_residual_blocks=6)
DEFAULT_SAGAN = dict(resolution=128, generator_channels=32, n_residual_blocks=6)


# ---------------------------------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------------------------------

def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, memory, the vector units that matter, library versions, GPU."""
    import cv2
    import numpy as np
    import torch

    from expr_models.models.runtime import cpu_capabilities

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cores_total": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_parallel_backend": "OpenMP" if "OpenMP" in torch.__config__.parallel_info() else "other",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "cv2_threads": cv2.getNumThreads(),
        "load_average_1_5_15": load_average(),
    }
    capabilities = cpu_capabilities()
    if capabilities:
        info["cpu_features"] = {key: bool(capabilities.get(key)) for key in
                                ("avx2", "avx512_f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")}
    if device.startswith("cuda") and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": properties.name, "memory_gib": round(properties.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda, "capability": f"{properties.major}.{properties.minor}"}
    return info


def machine_line(info: dict[str, Any]) -> str:
    from expr_models.models.runtime import widest_vector_unit

    gpu = f", GPU {info['gpu']['name']}" if "gpu" in info else ""
    load = info.get("load_average_1_5_15") or ["?"]
    vector_unit = widest_vector_unit(info.get("cpu_features") or {})
    return (f"{info['cpu']} ({vector_unit}), {info['cores_available']} cores, {info['memory_gib']} GiB{gpu}; torch "
            f"{info['torch']} ({info['torch_threads']} threads); load average {load[0]}")


# ---------------------------------------------------------------------------------------------------------------------
# Timing and memory
# ---------------------------------------------------------------------------------------------------------------------

def sync(device: Any = None) -> None:
    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1, device: Any = None,
            min_seconds: float = 0.0) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times, then ``repeats`` times (more while under ``min_seconds`` in all); median wall and
    CPU seconds, quartiles, min."""
    for _ in range(warmup):
        fn()
        sync(device)
    walls, cpus = [], []
    started = time.perf_counter()
    while len(walls) < repeats or (time.perf_counter() - started < min_seconds and len(walls) < 10 * repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return summary(walls, cpus)


def summary(walls: list[float], cpus: list[float] | None = None) -> dict[str, Any]:
    ordered = sorted(walls)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    result = {"median_s": statistics.median(ordered), "q1_s": quartiles[0], "q3_s": quartiles[2],
              "min_s": ordered[0], "runs": len(ordered)}
    if cpus:
        result["cpu_median_s"] = statistics.median(cpus)
    return result


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss``; KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# ---------------------------------------------------------------------------------------------------------------------
# Photos: only ones that ship in installed packages, and canvases made from them
# ---------------------------------------------------------------------------------------------------------------------

def astronaut():
    from skimage import data

    return data.astronaut()


def grace_hopper():
    import numpy as np
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def photo_of_size(megapixels: float, source=None):
    """A one-face photo of about ``megapixels``: Grace Hopper (or ``source``) resized, keeping its aspect ratio."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(grace_hopper() if source is None else source)
    width, height = image.size
    scale = (megapixels * 1e6 / (width * height)) ** 0.5
    size = (round(width * scale), round(height * scale))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC))


def multi_face_canvas(megapixels: float, faces: int = 5, seed: int = 0):
    """A 4:3 canvas of about ``megapixels`` with ``faces`` faces (astronaut and Grace Hopper crops, alternating) on a
    smooth background, in a row, each about a quarter of the canvas height so the detector finds them at any size."""
    import numpy as np
    from PIL import Image

    from expr_models.faces.detection import detect_faces
    from expr_models.faces.geometry import crop_face

    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(height * 4 / 3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = 150 + 40 * np.sin(xx / width * 3.1) * np.cos(yy / height * 2.3)
    canvas = np.repeat(background[..., None], 3, axis=-1).astype(np.uint8)
    sources = []
    for photo in (astronaut(), grace_hopper()):
        box = detect_faces(photo)[0]
        crop, _ = crop_face(photo, box, scale=1.8)
        sources.append(crop)
    rng = np.random.default_rng(seed)
    columns = faces
    cell = width // columns
    side = min(int(cell * 0.9), int(height * 0.45))
    for index in range(faces):
        face = np.asarray(Image.fromarray(sources[index % 2]).resize((side, side), Image.Resampling.LANCZOS))
        x = index * cell + (cell - side) // 2
        y = int((height - side) * (0.3 + 0.4 * rng.random()))
        canvas[y:y + side, x:x + side] = face
    return canvas


def encode_jpeg(array, path: Path, quality: int = 95) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path, "JPEG", quality=quality)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def inference_checkpoints(folder: Path, sagan_resolution: int | None = None, seed: int = 0,
                          with_classifier: bool = False) -> tuple[Path, dict]:
    """A models folder for the editor: the committed trained CycleGAN/SA-GAN when checkpoints/ has them, otherwise
    randomly initialised models with the default inference configs (``sagan_resolution`` overrides the SA-GAN's),
    saved into ``folder``. Style features (and a committed classifier, when there is one) come from checkpoints/;
    ``with_classifier`` adds a random default classifier when none is committed.

    Returns the folder and where each component came from.
    """
    import shutil

    import torch

    from expr_models import CycleGANConfig, CycleGANModel, SAGANConfig, SAGANModel
    from expr_models.pipeline import find_checkpoints

    committed = find_checkpoints(REPO_ROOT / "checkpoints")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    torch.manual_seed(seed)
    for component, paths in committed.items():
        for path in paths:
            target = folder / path.name
            if not target.exists():
                shutil.copytree(path, target)
        sources[component] = "committed: " + ", ".join(f"checkpoints/{p.name}" for p in paths)
    if "cyclegan" not in sources:
        config = CycleGANConfig(**DEFAULT_CYCLEGAN, with_discriminators=False)
        CycleGANModel(config).save_pretrained(folder / "cyclegan")
        sources["cyclegan"] = f"random init, {describe_config(config, DEFAULT_CYCLEGAN)}"
    if "sagan" not in sources:
        settings = dict(DEFAULT_SAGAN, resolution=sagan_resolution or DEFAULT_SAGAN["resolution"])
        config = SAGANConfig(**settings, with_discriminator=False)
        model = SAGANModel(config)
        # A fresh SA-GAN's attention gates start at 0; open them so the attention is computed as a trained one's is.
        for name, parameter in model.named_parameters():
            if name.endswith("gamma"):
                parameter.data.fill_(0.1)
        model.save_pretrained(folder / "sagan")
        sources["sagan"] = f"random init, {describe_config(config, settings)}"
    if with_classifier and "classifier" not in sources:
        from expr_models import ExpressionClassifier, ExpressionClassifierConfig

        ExpressionClassifier(ExpressionClassifierConfig()).save_pretrained(folder / "classifier")
        sources["classifier"] = "random init, default ExpressionClassifierConfig"
    return folder, sources


def describe_config(config, keys) -> str:
    return ", ".join(f"{key}={getattr(config, key)}" for key in keys)


# ---------------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------------

def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``columns`` as (key, heading)."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(heading for _, heading in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def save_results(name: str, payload: dict, output: Path | None = None) -> Path:
    """Write ``payload`` (with the machine and the load average now) as benchmarks/results/<name>.json."""
    path = Path(output) if output else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    payload["load_average_at_end"] = load_average()
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def target_line(name: str, value: float, limit: float, unit: str = "s", higher_is_better: bool = False) -> dict:
    """A target check: holds or missed, and by how much."""
    holds = value >= limit if higher_is_better else value <= limit
    if higher_is_better:
        margin = f"{value / limit:.2f}x of the target" if limit else ""
    else:
        margin = f"{value / limit:.2f}x the limit" if limit else ""
    return {"target": name, "measured": round(value, 4), "limit": limit, "unit": unit,
            "holds": bool(holds), "margin": margin}


# ---------------------------------------------------------------------------------------------------------------------
# The Space in a subprocess
# ---------------------------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def space_server(models: Path, log_path: Path, extra_env: dict[str, str] | None = None, timeout: float = 300):
    """``python app.py`` as a Space runs it, on a free localhost port, serving ``models``; yields ``(process, url)``
    once it answers, and stops it after. Raises ``RuntimeError`` (with the log's tail) if it exits or stays silent."""
    import httpx

    port = free_port()
    env = {**os.environ, "EXPR_MODELS_DIR": str(models), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           **(extra_env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Space exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            if time.time() > deadline:
                raise RuntimeError(f"the Space did not answer within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
