"""`orchestrator deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from orchestrator.cli._options import OverridesArg, RecipeArg, WorkdirOpt, load
from orchestrator.stages.deploy.options import Target


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def deploy(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    target: Annotated[Target, typer.Option("--target", "-t", help="compose (docker compose) or kubernetes.")] = ...,
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045 - Typer needs Optional on Python 3.10
        "--out", "-o", help="Directory for the files (replaced whole); default <workdir>/deploy/<target>.")] = None,
    nodes: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--nodes", min=1, help="Machines to spread tp x pp over (default: the recipe's nodes); >1: LWS / MPI.")] = None,
    namespace: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--namespace", "-n", help="Kubernetes namespace (default: kubectl's context).")] = None,
    model_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--model-path", help="The workdir's path on the serving node(s) (default: the recipe's workdir).")] = None,
    model_pvc: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--model-pvc", help="Kubernetes: mount this PersistentVolumeClaim (holding the workdir) instead of "
        "a hostPath.")] = None,
    hf_secret: Annotated[str, typer.Option(
        "--hf-secret", help="Kubernetes Secret whose key HF_TOKEN becomes the env var (optional at run time).")]
    = "hf-token",
    hosts: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--hosts", help="compose with several nodes: their addresses on the fast link, leader first, "
        "comma-separated.")] = None,
    nic: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--nic", help="Network interface(s) for NCCL/UCX/MPI, comma-separated (default: the platform's, "
        "e.g. the ConnectX-7 ports of a DGX Spark).")] = None,
    to_stdout: Annotated[bool, typer.Option("--stdout", help="Print the files instead of writing them.")] = False,
    workdir: WorkdirOpt = None,
) -> None:
    """Render deployment files: a docker compose file or Kubernetes manifests (LeaderWorkerSet across nodes)."""
    from orchestrator.stages.deploy import DeployOptions, default_out, render, write

    loaded = load(recipe, overrides, workdir)
    options = DeployOptions(target=target, nodes=nodes, namespace=namespace, model_path=model_path,
                            model_pvc=model_pvc, hf_secret=hf_secret, hosts=_csv(hosts), nics=_csv(nic))
    rendered = render(loaded, options)
    if to_stdout:
        for name, text in rendered.files.items():
            typer.echo(f"# ---- {name}")
            typer.echo(text, nl=False)
        return
    for path in write(rendered, out or default_out(loaded, target)):
        typer.echo(str(path))
    for note in rendered.notes:
        typer.echo(f"note: {note}", err=True)
