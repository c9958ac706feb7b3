"""Serve lifecycle against a real HTTP server process standing in for trtllm-serve.

TensorRT-LLM cannot run here, so tests/integration/standin_trtllm_serve.py (a real
http.server process answering /health and /v1/models) is put on PATH as `trtllm-serve`;
everything around it is real: port check, launch, health wait, timeout, early crash,
detach/stop, and Ctrl-C of the installed `orchestrator` CLI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from orchestrator.errors import StageFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime.serve_process import http_get
from orchestrator.stages.serve import run_serve, stop_serve
from tests.conftest import RECIPES, REPO

pytestmark = pytest.mark.integration

STANDIN = Path(__file__).with_name("standin_trtllm_serve.py")
SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
TINY = RECIPES / "tiny-mixtral-nvfp4-cpu.yaml"
ORCHESTRATOR = Path(sys.executable).with_name("orchestrator")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def standin_on_path(tmp_path, monkeypatch):
    """`trtllm-serve` on PATH is the stand-in; returns the PATH value (for subprocesses too)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "trtllm-serve"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    exe.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    monkeypatch.setenv("PATH", path)
    return path


@pytest.fixture
def workdir(tmp_path):
    """A workdir with an engine in it (what `orchestrator build` leaves)."""
    root = tmp_path / "work"
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "rank0.engine").write_bytes(b"stand-in engine")
    return root


def recipe_for(workdir: Path, port: int, *extra: str, path: Path = SPARK):
    return load_recipe(path, [f"workdir={workdir}", "runtime=local", f"serve.port={port}", *extra])


def test_detach_waits_for_health_then_stop_ends_it_with_standin(standin_on_path, workdir, monkeypatch):
    monkeypatch.setenv("STANDIN_HEALTH_DELAY_S", "0.6")
    port = free_port()
    recipe = recipe_for(workdir, port)
    ready = []
    t0 = time.monotonic()
    info = run_serve(recipe, detach=True, on_ready=ready.append)
    assert time.monotonic() - t0 >= 0.6 and ready == [info]
    assert info.openai_url == f"http://127.0.0.1:{port}/v1"
    assert info.model == "engine"  # TRT-LLM 1.2 reports the engine directory's name
    assert '"model": "engine"' in info.curl_example()
    state = json.loads(WorkdirLayout(workdir).serve_state.read_text())
    assert state["pid"] > 0 and state["url"] == info.openai_url and Path(state["log_path"]).is_file()
    assert http_get(info.base_url + "/health")[0] == 200

    with pytest.raises(UserError, match="already served"):
        run_serve(recipe, detach=True)

    stopped = stop_serve(recipe)
    assert stopped["pid"] == state["pid"]
    assert gone(state["pid"])
    assert not WorkdirLayout(workdir).serve_state.exists()
    assert "clean shutdown" in Path(state["log_path"]).read_text()
    assert stop_serve(recipe) is None


def test_health_timeout_stops_the_standin_and_fails(standin_on_path, workdir, monkeypatch):
    monkeypatch.setenv("STANDIN_HEALTH_DELAY_S", "60")
    recipe = recipe_for(workdir, free_port(), "serve.health_timeout_s=1")
    t0 = time.monotonic()
    with pytest.raises(StageFailed) as info:
        run_serve(recipe, detach=True)
    assert time.monotonic() - t0 >= 1.0  # it waited the recipe's timeout before giving up
    assert info.value.exit_code == 1 and "within 1 s" in info.value.message
    assert any("clean shutdown" in line for line in info.value.details)  # it was stopped, not left behind
    assert not WorkdirLayout(workdir).serve_state.exists()


def test_standin_crash_during_startup_fails_with_last_log_lines(standin_on_path, workdir, monkeypatch):
    monkeypatch.setenv("STANDIN_CRASH_EXIT", "3")
    recipe = recipe_for(workdir, free_port())
    with pytest.raises(StageFailed) as info:
        run_serve(recipe, detach=False)
    assert info.value.exit_code == 1 and "exited with code 3 during start-up" in info.value.message
    tail = info.value.details
    assert len(tail) == 30 and tail[-1].endswith("CUDA out of memory (simulated)")


def test_port_in_use_is_refused_before_launching_the_standin(standin_on_path, workdir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        recipe = recipe_for(workdir, port)
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use") as info:
            run_serve(recipe)
    assert info.value.exit_code == 2
    assert not WorkdirLayout(workdir).log("serve").exists()  # nothing was launched


def test_missing_engine_is_a_user_error(standin_on_path, tmp_path):
    recipe = recipe_for(tmp_path / "empty", free_port())
    with pytest.raises(UserError, match="no engine in"):
        run_serve(recipe)


def test_cpu_serve_reuses_the_lifecycle_with_a_reference_engine_standin(tmp_path, monkeypatch):
    port = free_port()
    module = types.ModuleType("orchestrator.stages.reference_server")
    module.reference_serve_argv = lambda recipe: [sys.executable, str(STANDIN), str(tmp_path), "--host",
                                                  recipe.serve.host, "--port", str(recipe.serve.port),
                                                  "--served_model_name", recipe.name]
    monkeypatch.setitem(sys.modules, "orchestrator.stages.reference_server", module)
    recipe = load_recipe(TINY, [f"workdir={tmp_path / 'work'}", f"serve.port={port}"])
    info = run_serve(recipe, detach=True)
    try:
        assert info.model == "tiny-mixtral-nvfp4-cpu" and info.runtime == "local"
    finally:
        assert stop_serve(recipe) is not None


# ---- the installed console script, for real ----

def _cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(ORCHESTRATOR), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _env(path: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    return env | {"PATH": path} | extra


def test_cli_serve_ctrl_c_stops_the_standin_cleanly(standin_on_path, workdir):
    port = free_port()
    proc = _cli("serve", str(SPARK), f"workdir={workdir}", "runtime=local", f"serve.port={port}",
                env=_env(standin_on_path))
    try:
        seen = []
        for line in proc.stdout:  # the stand-in's log lines are streamed first
            seen.append(line)
            if line.startswith("serving "):
                break
        assert seen and seen[-1].startswith(f"serving mixtral-8x7b-instruct-nvfp4 at http://127.0.0.1:{port}/v1"), (
            "".join(seen) + proc.stderr.read())
        assert any("stand-in trtllm-serve: loading" in line for line in seen)  # logs are streamed
        assert http_get(f"http://127.0.0.1:{port}/health")[0] == 200
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends to the orchestrator
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped mixtral-8x7b-instruct-nvfp4" in out
    log = WorkdirLayout(workdir).log("serve").read_text()
    assert "stand-in: clean shutdown (signal 2)" in log  # forwarded once, as SIGINT
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_cli_serve_detach_then_stop(standin_on_path, workdir):
    port = free_port()
    env = _env(standin_on_path)
    args = (str(SPARK), f"workdir={workdir}", "runtime=local", f"serve.port={port}")
    serve = _cli("serve", *args, "--detach", env=env)
    out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert f"at http://127.0.0.1:{port}/v1 (model 'engine'" in out and "curl http://127.0.0.1" in out
    pid = json.loads(WorkdirLayout(workdir).serve_state.read_text())["pid"]
    assert http_get(f"http://127.0.0.1:{port}/v1/models")[0] == 200  # still up after the CLI returned

    again = _cli("serve", *args, "--detach", env=env)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2 and "already served" in err

    stop = _cli("stop", *args, env=env)
    out, err = stop.communicate(timeout=60)
    assert stop.returncode == 0, err
    assert "stopped mixtral-8x7b-instruct-nvfp4" in out
    assert gone(pid)


def test_cli_serve_without_trtllm_or_docker_exits_2_in_one_line(tmp_path, workdir):
    empty_bin = tmp_path / "nothing"
    empty_bin.mkdir()
    env = _env(str(empty_bin), DOCKER_HOST="unix:///nonexistent/docker.sock")
    proc = _cli("serve", str(SPARK), f"workdir={workdir}", f"serve.port={free_port()}", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "trtllm-serve is not on PATH" in lines[0]
    assert "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6" in lines[0] and "runtime: local" in lines[0]
