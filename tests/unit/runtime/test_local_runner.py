"""LocalRunner with real child processes: argv lists, exit codes, log tee, signal forwarding, stop."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from orchestrator.errors import MissingToolError
from orchestrator.runtime.base import Job
from orchestrator.runtime.local import LocalRunner, log_tail

PY = sys.executable

# Prints "ready", counts SIGINTs, exits 5 on the first one.
TRAPS_INT = """
import signal, sys, time
count = 0
def on_int(signum, frame):
    global count
    count += 1
    print(f"got INT {count}", flush=True)
    time.sleep(0.3)  # a second SIGINT would arrive here if it were sent twice
    sys.exit(5)
signal.signal(signal.SIGINT, on_int)
print("ready", flush=True)
time.sleep(30)
"""

# Ignores SIGINT: stop() must escalate.
IGNORES_INT = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(30)
"""


def job(tmp_path, *argv: str, **kwargs) -> Job:
    return Job(stage="t", argv=list(argv), log_path=tmp_path / "logs" / "t.log", **kwargs)


def wait_for_line(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text().splitlines():  # a whole line, not the logged argv
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_run_returns_the_exit_code_and_tees_the_log(tmp_path, capfd):
    tricky = "; echo pwned $(whoami) 'quoted'"
    code = LocalRunner().run(job(tmp_path, PY, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", tricky))
    assert code == 3
    log = (tmp_path / "logs" / "t.log").read_text().splitlines()
    assert log[0].startswith("$ ") and log[1] == tricky  # passed as one argument, never through a shell
    assert tricky in capfd.readouterr().out


def test_run_passes_job_env_and_quiet_runner_does_not_echo(tmp_path, capfd):
    code = LocalRunner(echo=False).run(job(tmp_path, PY, "-c", "import os; print(os.environ['X_TEST'])",
                                           env={"X_TEST": "from-job"}))
    assert code == 0 and "from-job" in (tmp_path / "logs" / "t.log").read_text()
    assert "from-job" not in capfd.readouterr().out


def test_missing_tool_is_a_user_error(tmp_path):
    with pytest.raises(MissingToolError, match="no-such-tool-xyz is not on PATH") as info:
        LocalRunner().run(job(tmp_path, "no-such-tool-xyz", "--help"))
    assert info.value.exit_code == 2


def test_sigint_is_forwarded_once_and_reraised_after_the_child_exits(tmp_path):
    log = tmp_path / "logs" / "t.log"

    def press_ctrl_c():
        wait_for_line(log, "ready")
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        LocalRunner(echo=False).run(job(tmp_path, PY, "-c", TRAPS_INT))
    assert [line for line in log.read_text().splitlines() if line.startswith("got INT")] == ["got INT 1"]


def test_start_and_stop_escalates_when_sigint_is_ignored(tmp_path):
    handle = LocalRunner(echo=False).start(job(tmp_path, PY, "-c", IGNORES_INT))
    wait_for_line(tmp_path / "logs" / "t.log", "ready")
    assert handle.poll() is None
    code = handle.stop(timeout=0.5)
    assert code == -signal.SIGTERM
    assert handle.poll() == -signal.SIGTERM


def test_detached_child_is_found_again_from_its_state(tmp_path):
    runner = LocalRunner(echo=False)
    handle = runner.start(job(tmp_path, PY, "-c", TRAPS_INT), detach=True)
    wait_for_line(tmp_path / "logs" / "t.log", "ready")
    state = handle.state()
    assert state["runtime"] == "local" and state["pid"] == handle.pid and state["start_ticks"]
    again = runner.attach(state)
    assert again.poll() is None
    again.stop(timeout=5)
    assert again.poll() is not None
    assert "got INT 1" in again.log_tail()[-1]


def test_detached_child_output_is_redacted_in_its_log(tmp_path):
    """The detached job writes through detached_tee.py: secret values masked, exit code kept."""
    secret = "hf_detachedSECRETvalue123"
    script = "import os; print('token is', os.environ['HF_TOKEN'], flush=True); raise SystemExit(7)"
    handle = LocalRunner(echo=False).start(job(tmp_path, PY, "-c", script, env={"HF_TOKEN": secret}), detach=True)
    deadline = time.monotonic() + 20
    while handle.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.poll() == 7
    text = (tmp_path / "logs" / "t.log").read_text()
    assert "token is ***" in text and secret not in text


def test_a_detached_child_killed_by_sigkill_is_seen_killed(tmp_path):
    script = "import os, signal; print('going', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    handle = LocalRunner(echo=False).start(job(tmp_path, PY, "-c", script), detach=True)
    deadline = time.monotonic() + 20
    while handle.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.poll() == -signal.SIGKILL
    log = (tmp_path / "logs" / "t.log").read_text()
    assert "going" in log and "Traceback" not in log


def test_attach_to_a_reused_pid_sees_the_server_gone(tmp_path):
    state = {"runtime": "local", "pid": os.getpid(), "start_ticks": 1, "log_path": str(tmp_path / "x.log")}
    assert LocalRunner().attach(state).poll() == 0  # our own pid, but another start time: not the server


def test_log_tail_reads_the_last_lines(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert log_tail(path, 3) == ["line 99997", "line 99998", "line 99999"]
    assert log_tail(tmp_path / "absent.log") == []
