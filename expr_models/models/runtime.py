"""Running the models fast on a CPU: the arithmetic precision and the thread count."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


VECTOR_UNITS = ("amx_bf16", "avx512_bf16", "avx512_f", "avx2")  # widest first


@lru_cache(maxsize=None)
def cpu_capabilities() -> dict[str, bool]:
    """This CPU's instruction sets, by torch's names (``avx2``, ``avx512_bf16``, ...); empty where unknown."""
    try:
        return {name: bool(value) for name, value in torch.cpu.get_capabilities().items()}
    except Exception:  # noqa: BLE001 - older torch: read the flags from the kernel (the bf16 ones share the names)
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return {}
        return {name: name in flags for name in ("avx2", "avx512_bf16", "amx_bf16")}


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AMX or AVX512-BF16), so bf16 convolutions beat fp32 ones.

    Without those instructions oneDNN emulates bf16, which is slower than fp32.
    """
    capabilities = cpu_capabilities()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def widest_vector_unit(features: dict[str, bool] | None = None) -> str:
    """The widest of ``VECTOR_UNITS`` this CPU has (or ``features`` records, ``{name: bool}``), e.g. ``avx512_bf16``.

    Two machines of one name ("AMD EPYC") ran the benchmarks 1.5x apart, and only one of them made ``precision="auto"``
    run torch in bf16, so each measurement names it."""
    features = cpu_capabilities() if features is None else features
    if not features:
        return "vector units unknown"
    return next((name for name in VECTOR_UNITS if features.get(name)), "no avx2")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype the generators run under (``None``: plain fp32).

    ``auto`` is bfloat16 on CPUs with native bf16, where it is several times faster and its output differs from fp32's
    by well under a gray level on average (benchmarks/RESULTS.md), and fp32 everywhere else.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None


def machine_is_busy() -> bool:
    """True when the 1-minute load average is at or above the cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return os.getloadavg()[0] >= cores
    except OSError:  # no load average on this platform
        return False


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``count`` intra-op threads (``None``: leave torch's setting alone), then restore it.

    torch's thread count is OpenMP's, kept per calling thread: requests served on other threads keep their own
    setting (a thread that first runs torch code meanwhile starts with ``count``).
    """
    if not count:
        yield
        return
    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
