"""runtime: auto | local | docker -> a runner, or one line saying what is missing and how to get it."""

from __future__ import annotations

import importlib

import pytest

from orchestrator.errors import MissingToolError
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime import select
from orchestrator.runtime.local import LocalRunner
from tests.conftest import RECIPES

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
IMAGE = "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6"


@pytest.fixture
def tool_on_path(tmp_path, monkeypatch):
    exe = tmp_path / "trtllm-build"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture
def nothing_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))


class FakeDockerRunner:
    name = "docker"

    def __init__(self, recipe):
        self.recipe = recipe


def _docker(monkeypatch, runner_class, reachable=True):
    monkeypatch.setattr(select, "_docker_runner_class", lambda: runner_class)
    monkeypatch.setattr(select, "_docker_engine", lambda: (reachable, "engine 27.0" if reachable else "not reachable"))


def test_auto_prefers_the_tool_on_path(tool_on_path, monkeypatch):
    _docker(monkeypatch, FakeDockerRunner)
    assert isinstance(select.select_runner(load_recipe(SPARK), "trtllm-build"), LocalRunner)


def test_auto_falls_back_to_docker(nothing_on_path, monkeypatch):
    _docker(monkeypatch, FakeDockerRunner)
    assert isinstance(select.select_runner(load_recipe(SPARK), "trtllm-build"), FakeDockerRunner)


def test_auto_with_neither_names_the_image_and_runtime_local(nothing_on_path, monkeypatch):
    _docker(monkeypatch, FakeDockerRunner, reachable=False)
    with pytest.raises(MissingToolError) as info:
        select.select_runner(load_recipe(SPARK), "trtllm-build")
    message = info.value.message
    assert info.value.exit_code == 2 and "\n" not in message and info.value.hint is None
    assert "trtllm-build is not on PATH" in message and "no Docker engine (not reachable)" in message
    assert IMAGE in message and "runtime: local" in message


def test_docker_runtime_without_the_docker_module(monkeypatch):
    _docker(monkeypatch, None)
    with pytest.raises(MissingToolError, match="runtime: docker is not built into this orchestrator"):
        select.select_runner(load_recipe(SPARK, ["runtime=docker"]), "trtllm-serve")


def test_docker_runner_class_is_none_only_when_the_module_is_absent(monkeypatch):
    real = importlib.import_module

    def fake_import(name, *args):
        if name == select.DOCKER_MODULE:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert select._docker_runner_class() is None


def test_local_runtime_requires_the_tool(nothing_on_path):
    with pytest.raises(MissingToolError, match=f"trtllm-serve is not on PATH .runtime: local.: run inside {IMAGE}"):
        select.select_runner(load_recipe(SPARK, ["runtime=local"]), "trtllm-serve")


def test_cpu_platform_always_runs_locally(nothing_on_path):
    recipe = load_recipe(RECIPES / "tiny-mixtral-nvfp4-cpu.yaml", ["runtime=docker"])
    assert isinstance(select.select_runner(recipe, "trtllm-serve"), LocalRunner)
