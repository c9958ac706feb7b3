"""The one exception family of the orchestrator and the exit codes it maps to.

Every failure the user can act on is an `OrchestratorError`; `orchestrator.cli`
turns it into one line (plus indented details) and its exit code. Anything else
is an internal failure: exit 1, traceback only with ORCHESTRATOR_DEBUG=1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_GATE = 3


class OrchestratorError(Exception):
    """Base of all errors the CLI reports as a message rather than a traceback."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, details: list[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        self.hint = hint


class UserError(OrchestratorError):
    """Bad input the user can fix: recipe, paths, flags, environment. Exit 2."""

    exit_code = EXIT_USER


class RecipeError(UserError):
    """A recipe that fails validation; `details` holds one line per problem."""


class MissingToolError(UserError):
    """A tool (trtllm-build, docker, modelopt, ...) the stage needs is not available here."""


class StageFailed(OrchestratorError):
    """A stage ran and failed (a subprocess exited non-zero, a server died). Exit 1."""

    def __init__(self, message: str, *, log_tail: list[str] | None = None, exit_code: int = EXIT_INTERNAL,
                 hint: str | None = None):
        super().__init__(message, details=log_tail, hint=hint)
        self.exit_code = exit_code


class GateFailed(OrchestratorError):
    """An accuracy gate failed (quantized/original perplexity above the recipe's bound). Exit 3."""

    exit_code = EXIT_GATE
