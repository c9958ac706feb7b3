"""`orchestrator recipe validate|show|schema|list`."""

from __future__ import annotations

import typer

from orchestrator.cli._options import JsonOpt, OverridesArg, RecipeArg, load

app = typer.Typer(help="Validate, show and list recipes; print the recipe JSON Schema.", no_args_is_help=True)


@app.command("validate")
def validate(recipe: RecipeArg, overrides: OverridesArg = None) -> None:
    """Validate a recipe (all problems at once); exit 2 if it has any."""
    loaded = load(recipe, overrides)
    typer.echo(f"ok: {recipe} ({loaded.name}: {loaded.quantize.format.value} on {loaded.platform.value})")


@app.command("show")
def show(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonOpt = False) -> None:
    """Print the resolved recipe, every default filled in."""
    from orchestrator.recipe.dump import dump_recipe

    typer.echo(dump_recipe(load(recipe, overrides), as_json=as_json), nl=False)


@app.command("schema")
def schema() -> None:
    """Print the recipe JSON Schema (for editors: yaml-language-server)."""
    from orchestrator.recipe.dump import schema_json

    typer.echo(schema_json())


@app.command("list")
def list_recipes() -> None:
    """List the shipped recipes with the command each starts with."""
    from orchestrator.recipe.dump import shipped_recipes

    for path, command in shipped_recipes():
        typer.echo(f"{path}\t{command}")
