"""plan == build --dry-run == serve --dry-run == the committed goldens, for every shipped recipe.

A difference means the argv TensorRT-LLM gets has changed: if that was meant, run
`python scripts/update_goldens.py` and review the diff of tests/golden/.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHIPPED_RECIPES
from tests.golden.goldens import REPO, committed_files, expected_files

FIX = "intended? run `python scripts/update_goldens.py` and review the diff"


@pytest.mark.parametrize("path", SHIPPED_RECIPES, ids=lambda p: p.stem)
def test_goldens_match_what_the_code_emits(path):
    assert committed_files(path) == expected_files(path), FIX


@pytest.mark.parametrize("path", SHIPPED_RECIPES, ids=lambda p: p.stem)
def test_plan_and_dry_runs_print_the_golden_argv(cli, path):
    golden = committed_files(path)
    plan = {s["name"]: s for s in json.loads(cli("plan", path, "--json").output)["stages"]}

    build = cli("build", path, "--dry-run")
    if "build.argv" in golden:
        assert build.exit_code == 0, build.output
        assert shlex.split(build.output.strip()) == golden["build.argv"].split("\n")[:-1]
        assert plan["build"]["argv"] == golden["build.argv"].split("\n")[:-1]
    else:
        assert build.exit_code == 2 and "not applicable" in build.output
        assert plan["build"]["argv"] is None

    if "serve.argv" not in golden:
        return  # platform cpu: the CPU reference engine, not TensorRT-LLM (see goldens.py)
    serve = cli("serve", path, "--dry-run")
    assert serve.exit_code == 0, serve.output
    first, _, rest = serve.output.partition("\n")
    assert shlex.split(first) == golden["serve.argv"].split("\n")[:-1]
    assert plan["serve"]["argv"] == golden["serve.argv"].split("\n")[:-1]
    if "llm-api-options.yaml" in golden:
        header, _, text = rest.partition("\n")
        assert header.startswith("# writes ") and text == golden["llm-api-options.yaml"]
        assert list(plan["serve"]["files"].values()) == [golden["llm-api-options.yaml"]]
    else:
        assert rest == "" and plan["serve"]["files"] == {}


def test_installed_cli_dry_run_prints_the_golden_argv():
    """The console script for real, in a subprocess."""
    path = next(p for p in SHIPPED_RECIPES if p.stem.endswith("nvfp4-dgx-spark"))
    exe = Path(sys.executable).with_name("orchestrator")
    out = subprocess.run([exe, "build", path, "--dry-run"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert shlex.split(out.stdout) == committed_files(path)["build.argv"].split("\n")[:-1]
