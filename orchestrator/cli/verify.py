"""`orchestrator verify PATH`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli._options import JsonOpt, OverridesArg

PathArg = Annotated[Path, typer.Argument(
    help="A checkpoint directory (unified HF or TRT-LLM, detected), or a recipe YAML: then both checkpoints "
         "of its workdir.", show_default=False)]
OriginalOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045 - Typer needs Optional on Python 3.10
    "--original", help="The source model directory, for the size comparison (default: what quantize recorded).")]


def verify(path: PathArg, overrides: OverridesArg = None, original: OriginalOpt = None,
           as_json: JsonOpt = False) -> None:
    """Verify a unified HF or TRT-LLM checkpoint against the format contract."""
    from orchestrator.render import console
    from orchestrator.stages.verify import verify_checkpoint
    from orchestrator.stages.verify.table import size_tables

    if path.suffix in (".yaml", ".yml"):
        from orchestrator.cli._options import load
        from orchestrator.stages.verify.workdir import verify_workdir

        reports = verify_workdir(load(path, overrides), original=original)
    else:
        reports = [verify_checkpoint(path, original=original)]
    if as_json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
        return
    out = console()
    for report in reports:
        for table in size_tables(report):
            out.print(table)
