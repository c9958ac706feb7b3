"""Shared command-line arguments and options, defined once as Annotated aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file (see `orchestrator recipe list`).", show_default=False)]
OverridesArg = Annotated[
    Optional[list[str]],  # noqa: UP045 - Typer needs Optional here on Python 3.10
    typer.Argument(help="Overrides as key.path=value, e.g. serve.port=9000.", show_default=False),
]
WorkdirOpt = Annotated[Optional[Path], typer.Option("--workdir", "-w", help="Override the recipe's workdir.")]  # noqa: UP045
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would run; run nothing.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo the stage even if its outputs are up to date.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final summary.")]


def load(recipe: Path, overrides: list[str] | None, workdir: Path | None = None):
    """Load and validate a recipe, applying CLI overrides (and --workdir)."""
    from orchestrator.recipe.loader import load_recipe

    extra = list(overrides or [])
    if workdir is not None:
        extra.append(f"workdir={workdir}")
    return load_recipe(recipe, extra)
