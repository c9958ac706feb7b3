"""DockerRunner against a live Docker engine: mounts, env, working dir, exit codes, logs, cleanup, ports, GPUs.

Containers run the static-busybox image made by conftest (no registry); the TRT-LLM image
itself cannot be had here, so these check everything the runner does around the tool.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime.base import Job, Mount
from orchestrator.runtime.docker import DockerRunner
from tests.conftest import RECIPES

pytestmark = pytest.mark.docker

SECRET = "hf_secretvalue_never_in_logs_1234"


def _recipe(tmp_path: Path, name: str = "tiny-mixtral-nvfp4-cpu.yaml", *overrides: str):
    return load_recipe(RECIPES / name, [f"workdir={tmp_path / 'work'}", *overrides])


def _gone(client, name: str) -> bool:
    import docker

    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _outside_ip() -> str | None:
    """An address of this machine other than loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            ip = sock.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_mounts_env_workdir_logs_and_failure_exit_code(docker_engine, test_images, tmp_path, monkeypatch, capfd):
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    (hf_home / "marker").write_text("from-hf-cache\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "data.txt").write_text("read-only data\n")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("UNRELATED_HOST_VAR", "must-not-leak")
    recipe = _recipe(tmp_path)
    runner = DockerRunner(recipe, image=test_images["busybox"], client=docker_engine, pull=False)
    (runner.workdir / "sub").mkdir(parents=True)
    script = "; ".join([
        "echo cwd=$(pwd)",
        "echo greeting=$GREETING",
        "echo unrelated=${UNRELATED_HOST_VAR:-unset}",
        "echo token=$HF_TOKEN",
        "cat /root/.cache/huggingface/marker",
        "cat /data/extra/data.txt",
        "touch /root/.cache/huggingface/new 2>/dev/null && echo hf=writable || echo hf=read-only",
        "touch /data/extra/new 2>/dev/null && echo extra=writable || echo extra=read-only",
        "echo made-in-container > /workspace/out.txt && echo workdir=writable",
        "exit 7",
    ])
    log_path = runner.workdir / "logs" / "probe.log"
    job = Job(stage="probe", argv=["sh", "-c", script], log_path=log_path, env={"GREETING": "hello"},
              mounts=(Mount(extra, Path("/data/extra"), read_only=True),), cwd=runner.workdir / "sub")

    assert runner.run(job) == 7

    log = log_path.read_text()
    for line in ("cwd=/workspace/sub", "greeting=hello", "unrelated=unset", "from-hf-cache", "read-only data",
                 "hf=read-only", "extra=read-only", "workdir=writable", "token=***"):
        assert line in log, (line, log)
    assert SECRET not in log
    assert "GREETING, HF_HOME, HF_TOKEN" in log.splitlines()[1]  # names, never values
    assert (runner.workdir / "out.txt").read_text() == "made-in-container\n"
    assert not (hf_home / "new").exists() and not (extra / "new").exists()
    console = capfd.readouterr().out
    assert "greeting=hello" in console and SECRET not in console
    assert _gone(docker_engine, runner.container_name(job))


def test_success_exit_code_and_removal(docker_engine, test_images, tmp_path):
    runner = DockerRunner(_recipe(tmp_path), image=test_images["busybox"], client=docker_engine, pull=False, echo=False)
    job = Job(stage="ok", argv=["sh", "-c", "echo done"], log_path=runner.workdir / "logs" / "ok.log")
    assert runner.run(job) == 0
    assert "done" in job.log_path.read_text()
    assert _gone(docker_engine, runner.container_name(job))


def test_ctrl_c_stops_and_removes_the_container(docker_engine, test_images, tmp_path):
    runner = DockerRunner(_recipe(tmp_path), image=test_images["busybox"], client=docker_engine, pull=False, echo=False)
    job = Job(stage="long", argv=["sh", "-c", "echo started; sleep 120"], log_path=runner.workdir / "logs" / "long.log")
    name = runner.container_name(job)

    def interrupt_once_running():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if docker_engine.containers.get(name).status == "running":
                    break
            except Exception:  # noqa: BLE001 - not created yet
                pass
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.run(job)
    assert time.monotonic() - started < 30  # SIGINT reached the process through the init, no kill timeout
    assert _gone(docker_engine, name)
    assert "started" in job.log_path.read_text()


def test_port_published_on_loopback_only(docker_engine, test_images, tmp_path):
    runner = DockerRunner(_recipe(tmp_path), image=test_images["busybox"], client=docker_engine, pull=False, echo=False)
    www = runner.workdir / "www"
    www.mkdir(parents=True)
    (www / "health").write_text("ok-from-container\n")
    port = _free_port()
    job = Job(stage="serve", argv=["httpd", "-f", "-p", "8000", "-h", "/workspace/www"],
              log_path=runner.workdir / "logs" / "serve.log", ports={8000: ("127.0.0.1", port)})
    handle = runner.start(job)
    try:
        attrs = docker_engine.api.inspect_container(handle.container.id)
        assert attrs["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        body, deadline = None, time.monotonic() + 20
        while body is None and time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        assert body == "ok-from-container\n"
        outside = _outside_ip()
        if outside:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()
        assert handle.poll() is None
    finally:
        code = handle.stop(timeout=5)
    assert code is not None
    assert _gone(docker_engine, runner.container_name(job))


def test_detached_server_found_again_and_stopped(docker_engine, test_images, tmp_path):
    recipe = _recipe(tmp_path)
    runner = DockerRunner(recipe, image=test_images["busybox"], client=docker_engine, pull=False, echo=False)
    job = Job(stage="serve", argv=["sh", "-c", "echo detached-hello; sleep 120"],
              log_path=runner.workdir / "logs" / "serve.log")
    state = runner.start(job, detach=True).state()
    assert state["runtime"] == "docker"
    later = DockerRunner(recipe, image=test_images["busybox"], client=docker_engine, pull=False)
    handle = later.attach(state)
    deadline = time.monotonic() + 10
    while "detached-hello" not in "\n".join(handle.log_tail()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handle.poll() is None
    assert "detached-hello" in "\n".join(handle.log_tail())
    handle.stop(timeout=5)
    assert _gone(docker_engine, state["container_name"])
    assert "detached-hello" in job.log_path.read_text()  # saved before the container was removed
    assert later.attach(state).poll() == 0  # gone: reads as exited


def test_gpu_request_ipc_ulimits_on_container_config(docker_engine, test_images, tmp_path):
    """No GPU here: the container is created, not started, and its HostConfig is what `--gpus` would give."""
    recipe = _recipe(tmp_path, "mixtral-8x7b-instruct-fp8-h100.yaml", "runtime=docker", "serve.gpus=[0, 1]")
    runner = DockerRunner(recipe, image=test_images["busybox"], client=docker_engine, pull=False)
    job = Job(stage="build", argv=["trtllm-build", "--help"], log_path=runner.workdir / "logs" / "build.log")
    container = runner.create(job)
    try:
        host = docker_engine.api.inspect_container(container.id)["HostConfig"]
    finally:
        container.remove(force=True)
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"],
                                       "Capabilities": [["gpu"]], "Options": {}}]
    assert host["DeviceRequests"] == runner.container_spec(job)["device_requests"]  # what `plan` shows
    assert host["IpcMode"] == "host"
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]} == {"memlock": (-1, -1),
                                                                              "stack": (67108864, 67108864)}
    assert host["Init"] is True

    all_gpus = DockerRunner(_recipe(tmp_path, "mixtral-8x7b-instruct-fp8-h100.yaml"), image=test_images["busybox"],
                            client=docker_engine, pull=False)
    container = all_gpus.create(job)
    try:
        requests = docker_engine.api.inspect_container(container.id)["HostConfig"]["DeviceRequests"]
    finally:
        container.remove(force=True)
    assert requests[0]["Count"] == -1 and requests[0]["Capabilities"] == [["gpu"]]


def test_gpu_container_without_nvidia_runtime_is_a_user_error(docker_engine, test_images, tmp_path):
    if "nvidia" in (docker_engine.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime: a GPU container may start here")
    recipe = _recipe(tmp_path, "mixtral-8x7b-instruct-fp8-h100.yaml", "runtime=docker")
    runner = DockerRunner(recipe, image=test_images["busybox"], client=docker_engine, pull=False)
    job = Job(stage="build", argv=["true"], log_path=runner.workdir / "logs" / "build.log")
    with pytest.raises(UserError) as err:
        runner.run(job)
    assert "NVIDIA Container Toolkit" in (err.value.hint or "")
    assert _gone(docker_engine, runner.container_name(job))


def test_missing_image_and_failed_pull_name_the_fix(docker_engine, tmp_path):
    recipe = _recipe(tmp_path)
    job = Job(stage="build", argv=["true"], log_path=tmp_path / "build.log")
    missing = DockerRunner(recipe, image="orchestrator-test/not-here:1", client=docker_engine, pull=False)
    with pytest.raises(UserError) as err:
        missing.run(job)
    assert "orchestrator-test/not-here:1" in err.value.message
    assert "docker pull orchestrator-test/not-here:1" in err.value.hint and "images lock" in err.value.hint
    unreachable = DockerRunner(recipe, image="127.0.0.1:9/nowhere/image:1", client=docker_engine, pull=True)
    with pytest.raises(UserError) as err:
        unreachable.run(job)
    assert err.value.message.startswith("pulling image 127.0.0.1:9/nowhere/image:1 failed")
    assert "docker pull" in err.value.hint
