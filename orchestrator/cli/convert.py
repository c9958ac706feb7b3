"""`orchestrator convert`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def convert(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Convert the quantized model to a TensorRT-LLM checkpoint (rank files)."""
    raise NotImplementedStage("orchestrator convert")
