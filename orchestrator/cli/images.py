"""`orchestrator images show|lock`: the pinned TRT-LLM images."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedStage

app = typer.Typer(help="The pinned TensorRT-LLM images (docker/images.lock.yaml).", no_args_is_help=True)


@app.command("show")
def show() -> None:
    """Print the image lock: image, versions, architecture, digest per platform."""
    raise NotImplementedStage("orchestrator images show")


@app.command("lock")
def lock() -> None:
    """Resolve image digests from the registry and rewrite the lock."""
    raise NotImplementedStage("orchestrator images lock")
