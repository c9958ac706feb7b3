"""`orchestrator publish`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def publish(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Upload the quantized checkpoint and its card to the Hugging Face Hub."""
    raise NotImplementedStage("orchestrator publish")
