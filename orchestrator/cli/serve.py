"""`orchestrator serve` and `orchestrator stop`."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli._options import DryRunOpt, OverridesArg, RecipeArg, WorkdirOpt, load

DetachOpt = Annotated[bool, typer.Option("--detach", "-d", help="Return once healthy; `orchestrator stop` ends it.")]


def _print_ready(info) -> None:
    # flush: the server's own log lines are streamed to stdout too, and stdout may be a pipe.
    print(f"serving {info.recipe} at {info.openai_url} (model {info.model!r}, healthy after {info.startup_s:.1f} s)",
          flush=True)
    print(f"  try: {info.curl_example()}", flush=True)
    print(f"  log: {info.log_path}", flush=True)


def serve(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None, dry_run: DryRunOpt = False,
          detach: DetachOpt = False) -> None:
    """Serve the model with trtllm-serve (or the CPU reference engine on platform cpu); Ctrl-C stops it."""
    import shlex

    from orchestrator.layout import WorkdirLayout
    from orchestrator.stages.serve import llm_api_yaml, run_serve, server_argv
    from orchestrator.stages.trtllm import shown_path_map

    loaded = load(recipe, overrides, workdir)
    if dry_run:
        print(shlex.join(server_argv(loaded, path_in_runtime=shown_path_map(loaded))))
        options = llm_api_yaml(loaded) if loaded.platform_info.has_gpu else None
        if options:
            print(f"# writes {WorkdirLayout(loaded.resolved_workdir).llm_api_options}:")
            print(options, end="")
        return
    info = run_serve(loaded, detach=detach, on_ready=_print_ready)
    if detach:
        print(f"detached; stop it with: orchestrator stop {recipe}")
    else:
        print(f"stopped {info.recipe}")


def stop(recipe: RecipeArg, overrides: OverridesArg = None, workdir: WorkdirOpt = None) -> None:
    """Stop a server started with `orchestrator serve --detach`."""
    from orchestrator.stages.serve import stop_serve

    loaded = load(recipe, overrides, workdir)
    state = stop_serve(loaded)
    if state is None:
        print(f"nothing to stop: no detached server recorded for {loaded.name}")
    else:
        print(f"stopped {loaded.name} ({state.get('url')})")
