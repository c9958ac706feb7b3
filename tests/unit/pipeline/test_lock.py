"""The workdir lock: one run at a time, a dead holder's lock taken over with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.pipeline.lock import workdir_lock


def test_second_holder_gets_exit_2_naming_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": holder.pid, "since": "now"}))
        with pytest.raises(UserError) as info, workdir_lock(tmp_path):
            pass
        assert info.value.exit_code == 2 and str(holder.pid) in info.value.message
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over_with_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid}))
    warnings = []
    with workdir_lock(tmp_path, warn=warnings.append):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert warnings and "stale lock" in warnings[0]
    assert not (tmp_path / ".lock").exists()


def test_lock_released_on_error(tmp_path):
    with pytest.raises(RuntimeError), workdir_lock(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / ".lock").exists()
