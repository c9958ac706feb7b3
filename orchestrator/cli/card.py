"""`orchestrator card`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def card(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Write the model card (README.md) into the quantized checkpoint from measured numbers."""
    raise NotImplementedStage("orchestrator card")
