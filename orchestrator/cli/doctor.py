"""`orchestrator doctor [RECIPE]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli._options import JsonOpt, load


def doctor(
    recipe: Annotated[Optional[Path], typer.Argument(help="Recipe to judge this machine against.")] = None,  # noqa: UP045
    as_json: JsonOpt = False,
) -> None:
    """Check this machine: GPUs (NVML), Docker + NVIDIA runtime, TRT-LLM tools, Python stack, disk; then a verdict."""
    from orchestrator.doctor import diagnose
    from orchestrator.render import print_doctor

    loaded = load(recipe, None) if recipe is not None else None
    report = diagnose(loaded)
    print_doctor(report, as_json=as_json)
    if any(level == "fail" for level, _ in report.verdict):
        raise typer.Exit(1)
