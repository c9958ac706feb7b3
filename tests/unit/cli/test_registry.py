"""The command registry, the CLI and the README stay in sync (litgpt's _check_commands idea)."""

from __future__ import annotations

from orchestrator.cli import COMMANDS, app
from tests.conftest import REPO


def _registered_names():
    names = {c.name for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    return names


def test_every_registry_entry_is_a_cli_command():
    assert _registered_names() == {name for name, _, _ in COMMANDS}


def test_every_command_is_documented_in_readme():
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _, _ in COMMANDS if f"orchestrator {name}" not in readme]
    assert not missing, f"README lacks: {missing}"


def test_every_command_has_help():
    for info in app.registered_commands:
        assert (info.callback.__doc__ or "").strip(), info.name
    for group in app.registered_groups:
        for info in group.typer_instance.registered_commands:
            assert (info.callback.__doc__ or "").strip(), f"{group.name} {info.name}"
