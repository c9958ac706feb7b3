"""Every shipped recipe validates, starts with its command and carries the schema line."""

from __future__ import annotations

import json

import pytest

from orchestrator.recipe.dump import SCHEMA_PATH, schema_json
from orchestrator.recipe.loader import load_recipe
from tests.conftest import SHIPPED_RECIPES


@pytest.mark.parametrize("path", SHIPPED_RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# orchestrator ") and path.name in lines[0]
    assert any(line.startswith("# yaml-language-server: $schema=") for line in lines[:3])


def test_required_recipes_are_shipped():
    names = {p.name for p in SHIPPED_RECIPES}
    assert {"mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml", "mixtral-8x7b-instruct-nvfp4-b200.yaml",
            "mixtral-8x7b-instruct-fp8-h100.yaml", "tiny-mixtral-nvfp4-cpu.yaml"} <= names


def test_committed_schema_is_current():
    assert json.loads(SCHEMA_PATH.read_text()) == json.loads(schema_json()), "run `make schema`"


def test_every_schema_field_has_a_description():
    schema = json.loads(schema_json())
    missing = []
    for name, definition in [("Recipe", schema)] + list(schema.get("$defs", {}).items()):
        for field, spec in definition.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{field}")
    assert not missing


def test_seed_recipe_facts():
    recipe = load_recipe(next(p for p in SHIPPED_RECIPES if p.name.endswith("nvfp4-dgx-spark.yaml")))
    assert recipe.model.source == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert recipe.quantize.format.value == "nvfp4"
    assert recipe.quantize.calibration.dataset == "c4" and recipe.quantize.calibration.samples == 512
    assert {"lm_head", "*block_sparse_moe.gate*"} <= set(recipe.quantize.exclude)
    assert recipe.build.gemm_plugin == "nvfp4"
    assert recipe.platform_info.sm == 121


def test_recipe_reference_doc_is_current():
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_recipe_reference.py")], capture_output=True,
                         text=True, check=True, cwd=REPO)
    assert (REPO / "docs" / "RECIPE.md").read_text() == out.stdout, "run `make docs`"
