"""`orchestrator quantize`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg
from orchestrator.errors import NotImplementedStage


def quantize(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Quantize the model with nvidia-modelopt (calibration + unified HF export)."""
    raise NotImplementedStage("orchestrator quantize")
