"""`orchestrator eval`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def evaluate(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Perplexity of the original vs the exported quantized checkpoint (accuracy gate)."""
    raise NotImplementedStage("orchestrator eval")
