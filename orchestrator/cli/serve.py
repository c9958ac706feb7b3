"""`orchestrator serve` and `orchestrator stop`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def serve(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Serve the model with trtllm-serve (or the CPU reference engine on platform cpu)."""
    raise NotImplementedStage("orchestrator serve")


def stop(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Stop a server started with `orchestrator serve --detach`."""
    raise NotImplementedStage("orchestrator stop")
