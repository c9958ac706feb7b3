"""Shared fixtures: repository paths and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
SHIPPED_RECIPES = sorted(RECIPES.glob("*.yaml"))


@pytest.fixture
def cli():
    """Invoke the Typer app in-process: cli("recipe", "validate", path) -> Result."""
    from typer.testing import CliRunner

    from orchestrator.cli import app

    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke
