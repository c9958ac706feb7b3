"""`orchestrator quantize RECIPE`."""

from __future__ import annotations

from orchestrator.cli._options import OverridesArg, QuietOpt, RecipeArg, WorkdirOpt, load


def quantize(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None,
             quiet: QuietOpt = False) -> None:
    """Quantize the model with nvidia-modelopt (calibration + unified HF export)."""
    from orchestrator.pipeline.execute import run_standalone
    from orchestrator.render import console
    from orchestrator.stages.progress import rich_progress
    from orchestrator.stages.quantize import quantize as run_quantize
    from orchestrator.stages.verify.report import human_bytes

    loaded = load(recipe, overrides, workdir)
    with rich_progress(not quiet) as progress:
        result = run_standalone(loaded, "quantize", lambda: run_quantize(loaded, progress=progress))
    cal = result.calibration
    out = console()
    out.print(f"quantized {result.source['source']} to {result.format} on {result.device} in {result.duration_s:.1f} s "
              f"(load {result.load_s:.1f} s, calibration {result.calibration_s:.1f} s, export {result.export_s:.1f} s)")
    out.print(f"calibration: {cal['samples']} x {cal['seq_len']} tokens of {cal['source']}, batch {cal['batch_size']}, "
              f"seed {cal['seed']}, sha256 {cal['sha256'][:16]}")
    peak_gpu = f", GPU {result.peak_gpu_mem_gb:.2f} GiB" if result.peak_gpu_mem_gb is not None else ""
    out.print(f"peak memory: CPU {result.peak_cpu_mem_gb:.2f} GiB{peak_gpu}")
    out.print(f"wrote {result.checkpoint_dir} ({human_bytes(result.checkpoint_bytes)}) and {result.state_dir}")
