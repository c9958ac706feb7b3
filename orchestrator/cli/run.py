"""`orchestrator run RECIPE`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from orchestrator.cli._options import JsonOpt, OverridesArg, QuietOpt, RecipeArg, WorkdirOpt, load


def run(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    workdir: WorkdirOpt = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Re-run this stage (repeatable).")] = None,  # noqa: UP045
    from_stage: Annotated[Optional[str], typer.Option("--from", help="Re-run from this stage on.")] = None,  # noqa: UP045
    until: Annotated[Optional[str], typer.Option("--until", help="Stop after this stage.")] = None,  # noqa: UP045
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline fetch -> quantize -> convert -> build -> verify -> eval -> card; skip what is up to date."""
    from orchestrator.pipeline.display import QuietEvents, RichEvents, print_summary
    from orchestrator.pipeline.execute import RunOptions, run_pipeline

    loaded = load(recipe, overrides, workdir)
    options = RunOptions(force=set(force or []), from_stage=from_stage, until=until)
    if quiet or as_json:
        manifest = run_pipeline(loaded, options, QuietEvents())
    else:
        with RichEvents() as events:
            manifest = run_pipeline(loaded, options, events)
    print_summary(manifest, as_json=as_json)
