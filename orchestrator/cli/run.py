"""`orchestrator run`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def run(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Run the whole pipeline (fetch -> quantize -> convert -> build -> verify -> eval -> card)."""
    raise NotImplementedStage("orchestrator run")
