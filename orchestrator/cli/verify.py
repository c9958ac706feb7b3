"""`orchestrator verify`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def verify(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Verify a unified HF or TRT-LLM checkpoint against the format contract."""
    raise NotImplementedStage("orchestrator verify")
