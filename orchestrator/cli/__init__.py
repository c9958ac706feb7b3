"""The `orchestrator` command line: an explicit registry of commands, one module each.

Command modules only parse arguments, load the recipe and call one library
function; `_errors.handle_errors` (applied here, once) maps exceptions to exit codes.
Everything imported at start-up is light: `orchestrator --help` must not import torch.
"""

from __future__ import annotations

import importlib
import sys

import typer

from orchestrator.cli._errors import handle_errors, report

# (command name, module, attribute). Groups are typer.Typer objects; commands are functions.
# tests/unit/cli/test_registry.py keeps this in sync with the docs and the stage list.
COMMANDS: list[tuple[str, str, str]] = [
    ("recipe", "orchestrator.cli.recipe", "app"),
    ("plan", "orchestrator.cli.plan", "plan"),
    ("doctor", "orchestrator.cli.doctor", "doctor"),
    ("run", "orchestrator.cli.run", "run"),
    ("status", "orchestrator.cli.status", "status"),
    ("quantize", "orchestrator.cli.quantize", "quantize"),
    ("convert", "orchestrator.cli.convert", "convert"),
    ("verify", "orchestrator.cli.verify", "verify"),
    ("build", "orchestrator.cli.build", "build"),
    ("serve", "orchestrator.cli.serve", "serve"),
    ("stop", "orchestrator.cli.serve", "stop"),
    ("eval", "orchestrator.cli.evaluate", "evaluate"),
    ("bench", "orchestrator.cli.bench", "bench"),
    ("card", "orchestrator.cli.card", "card"),
    ("publish", "orchestrator.cli.publish", "publish"),
    ("images", "orchestrator.cli.images", "app"),
    ("deploy", "orchestrator.cli.deploy", "deploy"),
]

app = typer.Typer(
    name="orchestrator",
    help="Hugging Face LLM -> modelopt (NVFP4, FP8, ...) -> TensorRT-LLM checkpoint/engine -> served endpoint.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _wrap_group(group: typer.Typer) -> typer.Typer:
    for info in group.registered_commands:
        if info.callback is not None and not getattr(info.callback, "__wrapped__", None):
            info.callback = handle_errors(info.callback)
    return group


def _register() -> None:
    for name, module_name, attr in COMMANDS:
        target = getattr(importlib.import_module(module_name), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(_wrap_group(target), name=name)
        else:
            doc = (target.__doc__ or "").strip().split("\n")[0]
            app.command(name, help=target.__doc__, short_help=doc)(handle_errors(target))


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from orchestrator import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BaseException as exc:  # noqa: BLE001 - last resort; commands already map their own errors
        if isinstance(exc, SystemExit):
            raise
        sys.exit(report(exc))
