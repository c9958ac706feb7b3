"""The runner seam: what a stage asks of "somewhere to run an argv".

`LocalRunner` (runtime/local.py) runs argv lists as subprocesses; `DockerRunner`
(runtime/docker.py) runs them in the pinned TRT-LLM image through the docker SDK.
`runtime/select.py` picks one from the recipe's `runtime: auto|local|docker`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Mount:
    host: Path
    container: Path
    read_only: bool = True


@dataclass(frozen=True)
class Job:
    """One command to run: argv (never a shell string) plus what it may see."""

    stage: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # passed explicitly; values never logged
    secret_env: tuple[str, ...] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY")
    mounts: tuple[Mount, ...] = ()
    cwd: Path | None = None
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)  # container port -> (host ip, host port)


class Handle(Protocol):
    """A started background job (serve)."""

    def poll(self) -> int | None: ...
    def stop(self, timeout: float = 30.0) -> int: ...
    def log_tail(self, lines: int = 30) -> list[str]: ...

    def state(self) -> dict:
        """JSON-able identity for layout.serve_state: {"runtime": name, ...} (pid, container id)."""
        ...


class Runner(Protocol):
    name: str

    def path_in_runtime(self, host_path: Path) -> Path:
        """Where a host path is seen by the command (identity locally, the mount point in a container)."""
        ...

    def run(self, job: Job) -> int:
        """Run to completion, streaming and teeing the log; return the exit code."""
        ...

    def start(self, job: Job, detach: bool = False) -> Handle:
        """Start in the background (serve); logs still teed to job.log_path.

        detach=True: the job must outlive this process (`serve --detach`) and keep its log.
        """
        ...

    def attach(self, state: dict) -> Handle:
        """A handle to a job an earlier process started detached, from Handle.state() (`orchestrator stop`)."""
        ...


# Environment variables whose values never reach a log or the console (both runners apply this).
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY", re.IGNORECASE)
MASK = "***"


class Redactor:
    """Masks secret values (HF_TOKEN, ...) in any text bound for a log or the console."""

    def __init__(self, env: dict[str, str], secret_names: tuple[str, ...]):
        names = set(secret_names)
        self.values = sorted({value for name, value in env.items()
                              if value and len(value) >= 4 and (name in names or SECRET_NAME.search(name))},
                             key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text
