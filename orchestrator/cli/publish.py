"""`orchestrator publish RECIPE --repo-id ORG/NAME`."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli._options import DryRunOpt, OverridesArg, RecipeArg, WorkdirOpt, load


def publish(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub repository to create or update, ORG/NAME.")] = "",
    public: Annotated[bool, typer.Option("--public", help="Create the repository public (default: private).")] = False,
    workdir: WorkdirOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Upload the quantized checkpoint and its card to the Hugging Face Hub (private unless --public)."""
    from orchestrator.stages.publish import publish as upload
    from orchestrator.stages.publish import token_source, upload_plan
    from orchestrator.stages.verify.report import human_bytes

    plan = upload_plan(load(recipe, overrides, workdir), repo_id, private=not public)
    visibility = "private" if plan.private else "public"
    if dry_run:
        for name, size in plan.files:
            typer.echo(f"{size:>14,}  {name}")
        typer.echo(f"{len(plan.files)} files, {human_bytes(plan.total_bytes)} from {plan.folder}")
        typer.echo(f"would create {visibility} repo {plan.repo_id} at {plan.endpoint} and upload them; "
                   f"token: {token_source() or 'none found (set HF_TOKEN)'}")
        return
    url = upload(plan)
    typer.echo(f"uploaded {len(plan.files)} files ({human_bytes(plan.total_bytes)}) to {visibility} {url}")
