"""The local runner: argv lists as subprocesses on this machine, logs streamed and tee'd.

Used when the TRT-LLM tools are on PATH (inside the pinned container, or a user's own
install) and for the CPU reference engine. Every child runs in its own session, so a
Ctrl-C in the terminal reaches only the orchestrator, which forwards it exactly once to
the child's whole process group (trtllm-serve's MPI workers included) and waits for it:
a second, uncoordinated SIGINT is what makes servers skip their clean shutdown.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import MissingToolError
from orchestrator.runtime.base import Job, Redactor

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def log_tail(path: Path, lines: int = 30) -> list[str]:
    """The last `lines` lines of a log file (empty when there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read()
    except OSError:
        return []
    return [line.rstrip("\r") for line in deque(data.decode("utf-8", "replace").splitlines(), maxlen=lines)]


def _environment(job: Job) -> dict[str, str]:
    env = dict(os.environ)
    env.update(job.env)
    return env


def _resolve(argv: list[str]) -> list[str]:
    exe = shutil.which(argv[0])
    if exe is None:
        raise MissingToolError(f"{argv[0]} is not on PATH (runtime: local)")
    return [exe, *argv[1:]]


def _start_log(job: Job) -> IO[bytes]:
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(job.log_path, "wb")
    log.write(f"$ {_redactor(job)(shlex.join(job.argv))}\n".encode())
    log.flush()
    return log


def _redactor(job: Job) -> Redactor:
    """Masks the values of secret variables (HF_TOKEN, ...) the child can see, in its log and on our console."""
    return Redactor(_environment(job), job.secret_env)


def _echo_target() -> IO[bytes] | None:
    return getattr(sys.stdout, "buffer", None)


def _tee(source: IO[bytes], log: IO[bytes], echo: bool, redact: Redactor | None = None) -> None:
    """Copy the child's output line by line, secrets masked, to the log file and (echo) to our stdout."""
    out = _echo_target() if echo else None
    try:
        for line in iter(source.readline, b""):
            if redact is not None and redact.values:
                line = redact(line.decode("utf-8", "replace")).encode()
            log.write(line)
            log.flush()
            if echo:
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    sys.stdout.write(line.decode("utf-8", "replace"))
                    sys.stdout.flush()
    finally:
        log.close()
        source.close()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class _Forwarder:
    """While installed (main thread only), INT/TERM/HUP sent to us go to the child's process group."""

    def __init__(self, pid: int):
        self.pid = pid
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Forwarder:
        if threading.current_thread() is threading.main_thread():
            for signum in FORWARDED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._forward)
        return self

    def _forward(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        _signal_group(self.pid, signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def reraise(self) -> None:
        """After the child is gone: turn a forwarded signal into our own exit (Ctrl-C -> KeyboardInterrupt)."""
        if self.received == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is not None:
            raise SystemExit(128 + self.received)


def _proc_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks (Linux), to tell our server from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalHandle:
    """A server started by LocalRunner.start (or found again from its serve state)."""

    def __init__(self, pid: int, log_path: Path, proc: subprocess.Popen | None = None,
                 tee: threading.Thread | None = None, start_ticks: int | None = None):
        self.pid = pid
        self.log_path = log_path
        self._proc = proc
        self._tee = tee
        self.start_ticks = start_ticks if start_ticks is not None else _proc_start_ticks(pid)

    def poll(self) -> int | None:
        """None while running, else the exit code (0 when it was not our child and is gone)."""
        if self._proc is not None:
            return self._proc.poll()
        if not pid_alive(self.pid):
            return 0
        ticks = _proc_start_ticks(self.pid)
        if ticks is not None and self.start_ticks is not None and ticks != self.start_ticks:
            return 0  # the pid now belongs to another process: ours is gone
        return 0 if _zombie(self.pid) else None

    def _wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                return code
            time.sleep(0.05)
        return self.poll()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (a clean shutdown), then SIGTERM, then SIGKILL, to the whole process group."""
        code = self.poll()
        if code is None:
            for signum, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                _signal_group(self.pid, signum)
                code = self._wait(wait_s)
                if code is not None:
                    break
        if self._tee is not None:
            self._tee.join(timeout=5)
        return code if code is not None else -signal.SIGKILL

    def wait(self, grace_s: float = 30.0) -> int:
        """Block until the process ends; its exit code.

        INT/TERM/HUP sent to us meanwhile are forwarded to the process group; the child then
        gets `grace_s` for a clean exit before stop() escalates, and the signal is re-raised
        here once it is gone (see _Forwarder.reraise).
        """
        with _Forwarder(self.pid) as forwarder:
            code = None
            while code is None and forwarder.received is None:
                code = self._wait(0.5)
            if code is None:
                code = self._wait(grace_s)
                if code is None:
                    code = self.stop(timeout=5.0)
        if self._tee is not None:
            self._tee.join(timeout=5)
        forwarder.reraise()
        return code

    def log_tail(self, lines: int = 30) -> list[str]:
        return log_tail(self.log_path, lines)

    def state(self) -> dict[str, Any]:
        """What `orchestrator stop` needs to find this process again."""
        return {"runtime": "local", "pid": self.pid, "start_ticks": self.start_ticks, "log_path": str(self.log_path)}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


class LocalRunner:
    """Runs argv lists here: `run` to completion, `start` in the background (serve)."""

    name = "local"

    def __init__(self, echo: bool = True):
        self.echo = echo

    def path_in_runtime(self, host_path: Path) -> Path:
        return host_path

    def run(self, job: Job) -> int:
        """Run to completion, streaming and teeing the log; return the child's exit code.

        A SIGINT/SIGTERM/SIGHUP meanwhile is forwarded to the child; once the child has
        exited, SIGINT becomes KeyboardInterrupt here (exit 130), the others SystemExit(128+n).
        """
        argv = _resolve(job.argv)
        log = _start_log(job)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=job.cwd, env=_environment(job), start_new_session=True)
        tee = threading.Thread(target=_tee, args=(proc.stdout, log, self.echo, _redactor(job)), daemon=True)
        tee.start()
        return LocalHandle(proc.pid, job.log_path, proc, tee).wait()

    def start(self, job: Job, detach: bool = False) -> LocalHandle:
        """Start in the background. detach=True: the child outlives us and writes its log itself."""
        argv = _resolve(job.argv)
        log = _start_log(job)
        if detach:
            # The tee outlives us too: detached_tee.py masks secrets in the job's output as _tee does here.
            # Its own errors (if it cannot start) land in the same log.
            tee_argv = [sys.executable, "-m", "orchestrator.runtime.detached_tee", str(job.log_path),
                        *job.secret_env, "--", *argv]
            log.close()
            with open(job.log_path, "ab") as appended:  # append mode, like the tee's own writes
                proc = subprocess.Popen(tee_argv, stdout=appended, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=job.cwd, env=_environment(job),
                                        start_new_session=True)
            return LocalHandle(proc.pid, job.log_path, proc)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=job.cwd, env=_environment(job), start_new_session=True)
        tee = threading.Thread(target=_tee, args=(proc.stdout, log, self.echo, _redactor(job)), daemon=True)
        tee.start()
        return LocalHandle(proc.pid, job.log_path, proc, tee)

    def attach(self, state: dict[str, Any]) -> LocalHandle:
        """The handle of a server an earlier `serve --detach` started (from its serve state)."""
        return LocalHandle(int(state["pid"]), Path(state["log_path"]), start_ticks=state.get("start_ticks"))
