"""`orchestrator bench [RECIPE] [OVERRIDES] [--url URL]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli._options import JsonOpt, OverridesArg, WorkdirOpt, load

OptionalRecipeArg = Annotated[
    Optional[str],  # noqa: UP045 - Typer needs Optional here on Python 3.10
    typer.Argument(help="Recipe YAML file; optional when --url is given.", show_default=False),
]


def bench(
    recipe: OptionalRecipeArg = None,
    overrides: OverridesArg = None,
    url: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--url", help="Base URL of an OpenAI-compatible server (default: the recipe's served endpoint).")] = None,
    model: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--model", help="Model name sent in requests (default: the recipe's served name, else /v1/models).")] = None,
    tokenizer: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--tokenizer", help="Tokenizer directory for exact prompt/output token counts (default: the recipe's).")] = None,
    api: Annotated[str, typer.Option(
        "--api", help="auto (try /v1/completions, then /v1/chat/completions), completions or chat.")] = "auto",
    workdir: WorkdirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Benchmark an OpenAI-compatible endpoint: concurrency sweep (or request rate), bench.json, a plot, a table."""
    import json

    from orchestrator.stages.bench.report import print_table
    from orchestrator.stages.bench.run import raise_if_failed, run_bench
    from orchestrator.stages.bench.target import resolve_target, standalone_settings

    # `orchestrator bench --url U bench.output_len=8`: Typer hands the first override over as RECIPE.
    if recipe is not None and "=" in recipe and not Path(recipe).exists():
        recipe, overrides = None, [recipe, *(overrides or [])]
    if recipe is not None:
        loaded = load(Path(recipe), overrides, workdir)
        settings, target = loaded.bench, resolve_target(loaded, url=url, model=model, tokenizer=tokenizer)
    else:
        settings = standalone_settings(overrides)
        target = resolve_target(None, url=url, workdir=workdir, model=model, tokenizer=tokenizer)
    data = run_bench(settings, target, api=api)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    raise_if_failed(data)
