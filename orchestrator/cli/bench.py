"""`orchestrator bench`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def bench(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Benchmark an OpenAI-compatible endpoint (concurrency sweep)."""
    raise NotImplementedStage("orchestrator bench")
