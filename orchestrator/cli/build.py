"""`orchestrator build`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def build(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Build a TensorRT-LLM engine with trtllm-build."""
    raise NotImplementedStage("orchestrator build")
