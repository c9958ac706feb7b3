"""`serve --detach` / `stop` through DockerRunner with a stand-in for trtllm-serve in the container.

TensorRT-LLM cannot run here: tests/integration/standin_trtllm_serve.py (a real HTTP server)
is bind-mounted as /usr/local/bin/trtllm-serve into the Debian+python3 test image, and the
GPU settings are switched off (no GPU, and this engine may not raise memlock). Everything
else is the real path: the serve stage's argv and Job, the published port on 127.0.0.1, the
health wait through it, the recorded state, and `stop` finding the container again.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from orchestrator.layout import WorkdirLayout
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime.base import Mount
from orchestrator.runtime.docker import DockerRunner
from orchestrator.runtime.serve_process import http_get
from orchestrator.stages.serve import run_serve, stop_serve
from tests.conftest import RECIPES, REPO

pytestmark = pytest.mark.docker

STANDIN = REPO / "tests" / "integration" / "standin_trtllm_serve.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_detach_and_stop_in_a_container_with_standin(docker_engine, test_images, tmp_path):
    workdir = tmp_path / "work"
    (workdir / "engine").mkdir(parents=True)
    (workdir / "engine" / "rank0.engine").write_bytes(b"stand-in engine")
    standin = tmp_path / "trtllm-serve"
    shutil.copy(STANDIN, standin)
    standin.chmod(0o755)
    port = _free_port()
    recipe = load_recipe(RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml",
                         [f"workdir={workdir}", "runtime=docker", f"serve.port={port}"])
    runner = DockerRunner(recipe, image=test_images["debian"], client=docker_engine, pull=False, echo=False)
    runner.trtllm_settings = False  # stand-in: no GPU request / memlock here
    runner.mounts += (Mount(standin, Path("/usr/local/bin/trtllm-serve")),)

    info = run_serve(recipe, detach=True, runner=runner)

    assert info.runtime == "docker" and info.openai_url == f"http://127.0.0.1:{port}/v1"
    assert http_get(info.base_url + "/health")[0] == 200
    state = WorkdirLayout(workdir).serve_state.read_text()
    assert '"runtime": "docker"' in state and '"container_id"' in state
    name = f"orchestrator-{recipe.name}-serve"
    container = docker_engine.containers.get(name)
    command = container.attrs["Config"]["Cmd"]
    assert command[:2] == ["trtllm-serve", "/workspace/engine"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # listens inside; published on 127.0.0.1 only
    assert container.attrs["HostConfig"]["PortBindings"] == {f"{port}/tcp": [{"HostIp": "127.0.0.1",
                                                                              "HostPort": str(port)}]}

    stopped = stop_serve(recipe)  # a fresh DockerRunner finds the container from the recorded state

    assert stopped is not None and not WorkdirLayout(workdir).serve_state.exists()
    assert name not in {c.name for c in docker_engine.containers.list(all=True)}
    log = (workdir / "logs" / "serve.log").read_text()
    assert "stand-in trtllm-serve: loading /workspace/engine" in log and "clean shutdown" in log
