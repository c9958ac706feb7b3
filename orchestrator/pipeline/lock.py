"""One `run` per workdir: a lock file holding the owner's pid; a dead owner's lock is taken over."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.runtime.local import pid_alive


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def workdir_lock(workdir: Path, warn=None) -> Iterator[None]:
    """Hold `<workdir>/.lock` for the duration; exit 2 naming the holder when it is held."""
    warn = warn or (lambda message: print(message, file=sys.stderr))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / ".lock"
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            pid = int(holder.get("pid", 0) or 0)
            same_host = holder.get("host") in (None, mine["host"])
            if pid and same_host and pid_alive(pid) and pid != os.getpid():
                raise UserError(f"workdir {workdir} is locked by pid {pid} (since {holder.get('since', '?')})",
                                hint="wait for that run to finish, or stop it; a dead holder's lock is taken over") from None
            warn(f"warning: taking over stale lock {path} (pid {pid or '?'} is not running)")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(mine, fh)
        break
    else:
        raise UserError(f"could not take the lock {path}", hint="remove it if no run is active")
    try:
        yield
    finally:
        if _read(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
