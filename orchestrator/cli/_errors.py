"""The one place that maps exceptions to messages and exit codes."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.errors import EXIT_INTERNAL, OrchestratorError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("ORCHESTRATOR_DEBUG", "") not in ("", "0", "false", "no")


def report(exc: BaseException) -> int:
    """Print `exc` for a human (stderr) and return the exit code."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, OrchestratorError):
        print(f"error: {exc.message}", file=sys.stderr)
        for line in exc.details:
            print(f"  - {line}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    missing = _missing_extra(exc)
    if missing is not None:
        return report(missing)
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not debug_enabled():
        print("hint: rerun with ORCHESTRATOR_DEBUG=1 for the traceback", file=sys.stderr)
    return EXIT_INTERNAL


# Optional dependencies and the pyproject extra that brings each; a missing one is an install step, not a bug.
EXTRAS = {"torch": "quantize", "transformers": "quantize", "modelopt": "quantize", "safetensors": "quantize",
          "datasets": "quantize", "accelerate": "quantize", "matplotlib": "bench", "fastapi": "serving",
          "uvicorn": "serving"}


def _missing_extra(exc: BaseException) -> OrchestratorError | None:
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extra = EXTRAS.get(exc.name.split(".")[0])
    if extra is None:
        return None
    from orchestrator.errors import MissingToolError

    return MissingToolError(f"{exc.name.split('.')[0]} is not installed; this command needs the [{extra}] extra",
                            hint=f"pip install 'trtllm-orchestrator[{extra}]' (make setup installs every extra)")


def handle_errors(fn: F) -> F:
    """Wrap a command so every exception ends as a message and an exit code, never a bare traceback."""
    import typer

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - this is the one place errors become exit codes
            raise typer.Exit(report(exc)) from None

    return wrapper  # type: ignore[return-value]
