"""`orchestrator card`."""

from __future__ import annotations

import typer

from orchestrator.cli._options import OverridesArg, RecipeArg, WorkdirOpt, load


def card(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None) -> None:
    """Write the model card (README.md) into the quantized checkpoint from measured numbers."""
    from orchestrator.stages.card import write_card

    path = write_card(load(recipe, overrides, workdir))
    typer.echo(f"wrote {path}")
