"""The life of a server process, whatever runs it: port check, health wait, foreground, detach, stop.

trtllm-serve (local or in a container) and the CPU reference engine share this code:
each is started by a runner as a Handle, and everything here speaks only to the Handle
and to the server's HTTP endpoints (/health, /v1/models).
"""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json
from orchestrator.errors import StageFailed, UserError

HEALTH_PATH = "/health"
MODELS_PATH = "/v1/models"
LOG_TAIL_LINES = 30
ANY_ADDRESS = {"", "0.0.0.0", "::"}


def client_host(host: str) -> str:
    """Where a client reaches a server bound to `host` (a wildcard bind is reached on loopback)."""
    return "127.0.0.1" if host in ANY_ADDRESS else host


def base_url(host: str, port: int) -> str:
    shown = client_host(host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def ensure_port_free(host: str, port: int) -> None:
    """Raise UserError (exit 2) when `host:port` cannot be bound, before anything is launched."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # uvicorn sets SO_REUSEADDR too: sockets in TIME_WAIT from a server just stopped are not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is already in use: stop what listens there "
                                f"(`orchestrator stop RECIPE` if it is ours) or set serve.port=<a free port>") from None
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); set serve.host to an address of "
                            "this machine (127.0.0.1 for local use)") from None


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `url`: (status, body); raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) URL we built
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_health(url: str, handle, timeout_s: float, poll_s: float = 0.5) -> float:
    """Wait until GET url/health answers 200; the seconds it took.

    Raises StageFailed (exit 1) with the last log lines when the server exits first or
    `timeout_s` passes (the server is stopped then).
    """
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        code = handle.poll()
        if code is not None:
            handle.stop(timeout=1.0)  # lets the log tee finish, so the tail below is complete
            raise StageFailed(f"the server exited with code {code} during start-up",
                              log_tail=handle.log_tail(LOG_TAIL_LINES))
        try:
            status, _ = http_get(url + HEALTH_PATH, timeout=min(5.0, max(poll_s, 1.0)))
            if status == 200:
                return time.monotonic() - started
        except (OSError, ValueError):
            pass  # not listening yet (models load before the HTTP server starts)
        if time.monotonic() >= deadline:
            handle.stop(timeout=10.0)
            raise StageFailed(f"the server did not answer GET {url}{HEALTH_PATH} within {timeout_s:g} s "
                              "(serve.health_timeout_s); stopped it", log_tail=handle.log_tail(LOG_TAIL_LINES))
        time.sleep(poll_s)


def model_ids(url: str) -> list[str]:
    """The model ids GET url/v1/models lists ([] when it answers nothing usable)."""
    try:
        status, body = http_get(url + MODELS_PATH)
        return [m["id"] for m in json.loads(body)["data"]] if status == 200 else []
    except (OSError, ValueError, KeyError, TypeError):
        return []


@dataclass
class ServerInfo:
    """A healthy server: where it answers, under which model name, where it logs."""

    recipe: str
    base_url: str
    model: str
    log_path: str
    argv: list[str]
    runtime: str
    started_at: str
    startup_s: float
    handle_state: dict[str, Any] = field(default_factory=dict)

    @property
    def openai_url(self) -> str:
        return self.base_url + "/v1"

    def curl_example(self) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": "Hello!"}],
                           "max_tokens": 32})
        return (f"curl {self.openai_url}/chat/completions -H 'Content-Type: application/json' "
                f"-d '{body}'")


def write_state(path: Path, info: ServerInfo) -> None:
    """layout.serve_state: what `orchestrator stop` and `bench` need to find the detached server."""
    data = asdict(info)
    data["url"] = info.openai_url
    data.update(data.pop("handle_state"))  # runtime, pid / container id: flat, as Runner.attach reads them
    atomic_write_json(path, data)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise UserError(f"{path} is not valid JSON", hint="delete it if no server is running") from None


def attach(state: dict[str, Any], runner_for: Callable[[str], Any]):
    """The Handle of the server recorded in `state`, through the runner that started it."""
    from orchestrator.errors import MissingToolError

    runner = runner_for(state.get("runtime", "local"))
    if not hasattr(runner, "attach"):
        raise MissingToolError(f"runtime {runner.name} cannot find a detached server again (no attach)")
    return runner.attach(state)


def running_server(path: Path, runner_for: Callable[[str], Any]) -> dict[str, Any] | None:
    """The recorded detached server's state while it still runs; a stale record is removed."""
    state = read_state(path)
    if state is None:
        return None
    if attach(state, runner_for).poll() is None:
        return state
    path.unlink(missing_ok=True)
    return None


def stop_server(path: Path, runner_for: Callable[[str], Any], timeout: float = 30.0) -> dict[str, Any] | None:
    """Stop the detached server recorded at `path` and forget it; its state, or None when none was recorded."""
    state = read_state(path)
    if state is None:
        return None
    handle = attach(state, runner_for)
    if handle.poll() is None:
        handle.stop(timeout=timeout)
    path.unlink(missing_ok=True)
    return state


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP become KeyboardInterrupt meanwhile, so the server is stopped, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_and_wait_healthy(runner, job, url: str, timeout_s: float, detach: bool):
    """Start `job` and wait for its health endpoint; (handle, seconds). Any failure or Ctrl-C stops it."""
    handle = runner.start(job, detach=detach)
    try:
        with termination_as_interrupt():
            return handle, wait_for_health(url, handle, timeout_s)
    except BaseException:
        if handle.poll() is None:
            handle.stop(timeout=10.0)
        raise


def run_foreground(handle, poll_s: float = 0.2) -> int | None:
    """Wait while the server runs; None after Ctrl-C (server stopped cleanly), else its exit code."""
    try:
        with termination_as_interrupt():
            while True:
                code = handle.poll()
                if code is not None:
                    handle.stop(timeout=1.0)  # lets the log tee finish
                    return code
                time.sleep(poll_s)
    except KeyboardInterrupt:
        handle.stop()
        return None
