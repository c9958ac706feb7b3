"""`orchestrator convert RECIPE`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, RecipeArg, WorkdirOpt, load


def convert(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None) -> None:
    """Convert the quantized model to a TensorRT-LLM checkpoint (rank files)."""
    from orchestrator.pipeline.execute import run_standalone
    from orchestrator.render import console
    from orchestrator.stages.convert import convert as run_convert
    from orchestrator.stages.verify.report import human_bytes

    loaded = load(recipe, overrides, workdir)
    result = run_standalone(loaded, "convert", lambda: run_convert(loaded))
    console().print(
        f"wrote {result.checkpoint_dir}: {', '.join(result.rank_files)} (tp {result.tp} x pp {result.pp}"
        f"{f', ep {result.ep}' if result.ep > 1 else ''}, "
        f"decoder {result.decoder_type}, {human_bytes(result.checkpoint_bytes)}) in {result.duration_s:.1f} s "
        f"(restore {result.load_s:.1f} s, export {result.export_s:.1f} s)")
