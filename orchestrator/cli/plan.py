"""`orchestrator plan RECIPE`."""

from __future__ import annotations

from orchestrator.cli._options import JsonOpt, OverridesArg, RecipeArg, load


def plan(recipe: RecipeArg, overrides: OverridesArg = None, as_json: JsonOpt = False) -> None:
    """Show the stage graph: inputs, outputs, where each stage runs, and the exact TRT-LLM commands."""
    from orchestrator.plan import plan as make_plan
    from orchestrator.render import print_plan

    loaded = load(recipe, overrides)
    print_plan(loaded, make_plan(loaded), as_json=as_json)
