"""Pick the runner for a recipe's `runtime: auto | local | docker`.

auto: local when the TRT-LLM tool is on PATH (inside the pinned container, or a user's own
install), else docker when its runner and a Docker engine are there. When neither is, the
command stops before doing anything, with one line saying what is missing and how to get it.
Platforms without a GPU run everything locally (the CPU reference engine is plain Python).
"""

from __future__ import annotations

import importlib
import shutil

from orchestrator.errors import MissingToolError
from orchestrator.runtime.local import LocalRunner

DOCKER_MODULE = "orchestrator.runtime.docker"


def _docker_runner_class():
    """DockerRunner, imported only when wanted (the docker SDK is heavy); None when not built in."""
    try:
        module = importlib.import_module(DOCKER_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != DOCKER_MODULE:
            raise
        return None
    return module.DockerRunner


def _docker_engine() -> tuple[bool, str]:
    from orchestrator.doctor import probe_docker

    reachable, _nvidia, text = probe_docker()
    return reachable, text


def _image_ref(recipe) -> str:
    from orchestrator.stages.trtllm import pinned_image

    image = pinned_image(recipe)
    return image.pinned_ref(recipe.platform_info.arch) if image else "the pinned TRT-LLM image"


def runner_named(name: str, recipe, echo: bool = True):
    """The runner called `name` ("local" | "docker"), e.g. to find a detached server again."""
    if name == "local":
        return LocalRunner(echo=echo)
    if name == "docker":
        docker_runner = _docker_runner_class()
        if docker_runner is None:
            raise MissingToolError("runtime: docker is not built into this orchestrator (no "
                                   f"{DOCKER_MODULE}); use runtime: local inside {_image_ref(recipe)}")
        return docker_runner(recipe)
    raise MissingToolError(f"unknown runtime {name!r}")


def select_runner(recipe, tool: str, echo: bool = True):
    """The runner that will run `tool` (trtllm-build / trtllm-serve) for `recipe`."""
    if not recipe.platform_info.has_gpu:
        return LocalRunner(echo=echo)
    runtime = recipe.runtime.value
    if runtime == "local":
        if shutil.which(tool) is None:
            raise MissingToolError(f"{tool} is not on PATH (runtime: local): run inside {_image_ref(recipe)} or set "
                                   "runtime: docker")
        return LocalRunner(echo=echo)
    if runtime == "docker":
        return runner_named("docker", recipe, echo)
    if shutil.which(tool) is not None:
        return LocalRunner(echo=echo)
    docker_runner = _docker_runner_class()
    if docker_runner is not None:
        reachable, text = _docker_engine()
        if reachable:
            return docker_runner(recipe)
        docker_state = f"no Docker engine ({text})"
    else:
        docker_state = "no docker runtime in this orchestrator"
    raise MissingToolError(
        f"{tool} is not on PATH and {docker_state}: install Docker with the NVIDIA Container Toolkit so "
        f"{_image_ref(recipe)} can run, or run inside that image with runtime: local")
