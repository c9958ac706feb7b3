"""Peak CPU and GPU memory of a block of work (for stage records)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Usage:
    duration_s: float = 0.0
    peak_cpu_mem_gb: float | None = None
    peak_gpu_mem_gb: float | None = None


def _rss_bytes() -> int:
    try:
        import psutil
    except ImportError:
        return 0
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(Exception):
            total += child.memory_info().rss
    return total


@contextlib.contextmanager
def measure(interval: float = 0.25) -> Iterator[Usage]:
    """Sample RSS (this process and children) in a thread; read torch's CUDA peak if torch is in use."""
    usage = Usage()
    peak = [_rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_bytes())

    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        usage.duration_s = round(time.perf_counter() - start, 3)
        usage.peak_cpu_mem_gb = round(peak[0] / 2**30, 3) if peak[0] else None
        cuda = cuda or _cuda()
        if cuda is not None:
            usage.peak_gpu_mem_gb = round(cuda.max_memory_allocated() / 2**30, 3)


def _cuda():
    torch = sys.modules.get("torch")  # only if a stage already imported it: never import torch for metering
    if torch is not None and torch.cuda.is_available():
        return torch.cuda
    return None
