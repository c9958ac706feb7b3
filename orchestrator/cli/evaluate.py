"""`orchestrator eval`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli._options import JsonOpt, OverridesArg, RecipeArg, WorkdirOpt, load

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (a CUDA GPU when present), cpu or cuda.")]


def evaluate(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None,
             device: DeviceOpt = "auto", as_json: JsonOpt = False) -> None:
    """Perplexity of the original vs the exported quantized checkpoint (accuracy gate).

    The quantized model is emulated from checkpoint-hf's files, so this runs on a CPU or any GPU.
    Exit 3 when quantized/original perplexity exceeds eval.perplexity.max_ratio.
    """
    from orchestrator.stages.evaluate import evaluate_and_record

    result = evaluate_and_record(load(recipe, overrides, workdir), device=device)
    if as_json:
        typer.echo(json.dumps(result.metrics, indent=2))
        return
    typer.echo(f"perplexity on {result.text_source}: {result.tokens} tokens, seq_len {result.seq_len}, "
               f"stride {result.stride}, {result.device} {result.dtype}")
    typer.echo(f"  original   {result.original_perplexity:.4f}")
    typer.echo(f"  quantized  {result.quantized_perplexity:.4f}  ({result.quant_algo}, emulated)")
    typer.echo(f"  ratio      {result.ratio:.4f} <= {result.max_ratio}: gate passed")
