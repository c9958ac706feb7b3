"""The CPU reference engine's argv (transformers serve) and which model directory it serves."""

from __future__ import annotations

import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.models import BUILTIN_MODELS
from orchestrator.recipe.loader import load_recipe
from orchestrator.stages.reference_server import (
    REFERENCE_LABEL,
    reference_model_dir,
    reference_serve_argv,
    reference_serve_env,
)
from tests.conftest import REPO

TINY = REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml"


def test_argv_serves_the_builtin_model_on_cpu_at_the_recipe_port(tmp_path):
    recipe = load_recipe(TINY, ["serve.port=9123", f"workdir={tmp_path}"])
    argv = reference_serve_argv(recipe)
    assert argv[:4] == [sys.executable, "-m", "transformers.commands.transformers_cli", "serve"]
    flags = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert flags["--force_model"] == str(BUILTIN_MODELS["tiny-mixtral"].resolve())
    assert (flags["--host"], flags["--port"], flags["--device"], flags["--dtype"]) == (
        "127.0.0.1", "9123", "cpu", "bfloat16")
    assert int(flags["--model_timeout"]) >= 86400  # the model stays loaded for the server's life


def test_env_keeps_the_server_offline():
    assert reference_serve_env() == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_label_says_it_is_not_tensorrt_llm():
    assert "transformers serve" in REFERENCE_LABEL and "not TensorRT-LLM" in REFERENCE_LABEL


def test_dequantized_weights_must_exist_first(tmp_path):
    recipe = load_recipe(TINY, [f"workdir={tmp_path}"])
    with pytest.raises(UserError, match="reference-bf16/config.json is missing"):
        reference_model_dir(recipe, "dequantized")
    (tmp_path / "reference-bf16").mkdir()
    (tmp_path / "reference-bf16" / "config.json").write_text("{}")
    assert reference_serve_argv(recipe, "dequantized")[5] == str((tmp_path / "reference-bf16").resolve())
