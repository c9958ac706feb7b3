"""What a stage record needs besides the artifact: versions, peak memory, timing, a log of library chatter."""

from __future__ import annotations

import contextlib
import logging
import platform
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("trtllm-orchestrator", "nvidia-modelopt", "torch", "transformers", "safetensors", "huggingface_hub",
            "accelerate", "datasets")


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a quantized artifact depends on (None: not installed)."""
    from orchestrator.pipeline.fingerprint import package_versions

    return {"python": platform.python_version(), **package_versions(*PACKAGES)}


def peak_cpu_rss_gb() -> float:
    """Peak resident memory of this process so far, GiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak * (1024 if sys.platform != "darwin" else 1) / 2**30, 3)


def reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gpu_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    @property
    def elapsed(self) -> float:
        return round(time.perf_counter() - self.start, 3)


@contextlib.contextmanager
def library_output_to(log_path: Path) -> Iterator[None]:
    """Send what modelopt/transformers print (stdout, stderr, warnings, tqdm, transformers logging) to a log.

    Our own progress and summary go to consoles bound before this swap, so the terminal
    shows those and the log keeps the rest.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        library_logger = logging.getLogger("transformers")
        # Swap the handler list rather than calling transformers' disable/enable_default_handler, which
        # assert on state that nested or repeated swaps (quantize then convert in one run) can break.
        saved = list(library_logger.handlers)
        library_logger.handlers = [handler]
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            library_logger.handlers = saved
