"""`orchestrator build`."""

from __future__ import annotations

from orchestrator.cli._options import DryRunOpt, ForceOpt, OverridesArg, RecipeArg, WorkdirOpt, load


def build(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None, dry_run: DryRunOpt = False,
          force: ForceOpt = False) -> None:
    """Build a TensorRT-LLM engine with trtllm-build (into a temporary dir, renamed when complete)."""
    import shlex

    from orchestrator.errors import UserError
    from orchestrator.stages.build import build_argv, not_applicable, run_build
    from orchestrator.stages.trtllm import shown_path_map

    loaded = load(recipe, overrides, workdir)
    reason = not_applicable(loaded)
    if reason:
        raise UserError(reason)
    if dry_run:
        print(shlex.join(build_argv(loaded, path_in_runtime=shown_path_map(loaded))))
        return
    from orchestrator.pipeline.execute import run_standalone

    outcome = run_standalone(loaded, "build", lambda: run_build(loaded, force=force))
    if outcome.skipped:
        print(f"engine up to date: {outcome.engine} (same trtllm-build argv; --force rebuilds)")
    else:
        print(f"engine: {outcome.engine} ({outcome.engine_bytes / 1e9:.2f} GB, {outcome.duration_s:.1f} s; "
              f"log {outcome.log_path})")
