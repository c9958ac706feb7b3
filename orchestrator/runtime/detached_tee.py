"""The log writer of a detached local job (`serve --detach`): the job outlives us, so its tee must too.

    python -m orchestrator.runtime.detached_tee LOG [SECRET_NAME ...] -- ARGV ...

runs ARGV in this process's group (LocalRunner starts this process as a session leader), copies
its output line by line to LOG with the values of secret variables masked (HF_TOKEN, ...; the
same Redactor as LocalRunner.run), and ends the way ARGV ended (its exit code, or its signal).
INT/TERM/HUP reach the whole group (LocalHandle.stop); this process ignores them, so the job's
last lines (its shutdown messages) are still masked and written before it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.runtime.base import Redactor
from orchestrator.runtime.local import FORWARDED_SIGNALS, _tee


def main(argv: list[str]) -> int:
    split = argv.index("--")
    log_path, secret_names, command = Path(argv[0]), tuple(argv[1:split]), argv[split + 1:]
    log = open(log_path, "ab")  # before the job starts: a job with no reader would die on its next write
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    # Only after the start: an ignored signal would be inherited by the job.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _tee(proc.stdout, log, False, Redactor(dict(os.environ), secret_names))
    code = proc.wait()
    if code < 0:  # end by the same signal, so whoever polls us sees what the job saw
        if -code != signal.SIGKILL:  # SIGKILL's disposition cannot be set, and needs no reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
