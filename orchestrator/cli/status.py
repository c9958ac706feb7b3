"""`orchestrator status`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def status(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Show the workdir manifest: what each stage made, when, and with what."""
    raise NotImplementedStage("orchestrator status")
