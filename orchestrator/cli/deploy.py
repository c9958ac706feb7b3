"""`orchestrator deploy`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def deploy(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Render deployment manifests (docker compose, Kubernetes)."""
    raise NotImplementedStage("orchestrator deploy")
