"""`orchestrator status RECIPE`."""

from __future__ import annotations

from orchestrator.cli._options import JsonOpt, OverridesArg, RecipeArg, WorkdirOpt, load


def status(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None,
           as_json: JsonOpt = False) -> None:
    """Show the workdir manifest: what each stage made, when, from what, and with what."""
    from orchestrator.errors import UserError
    from orchestrator.layout import WorkdirLayout
    from orchestrator.manifest import load_manifest
    from orchestrator.pipeline.display import print_summary

    loaded = load(recipe, overrides, workdir)
    layout = WorkdirLayout(loaded.resolved_workdir)
    if not layout.manifest.is_file():
        raise UserError(f"no manifest in {layout.root}", hint=f"run `orchestrator run {recipe}` first")
    print_summary(load_manifest(layout.manifest, loaded.name), as_json=as_json)
