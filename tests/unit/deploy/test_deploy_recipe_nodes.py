"""The recipe's `nodes`: tp x pp may use nodes x the platform's GPUs, spread evenly; the two-Spark recipe."""

from __future__ import annotations

import pytest

from orchestrator.errors import RecipeError
from orchestrator.recipe.loader import load_recipe
from tests.conftest import RECIPES

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
TWO_SPARKS = RECIPES / "mixtral-8x7b-instruct-nvfp4-2x-dgx-spark.yaml"


def test_two_sparks_allow_tp_2():
    recipe = load_recipe(SPARK, ["nodes=2", "checkpoint.tp=2"])
    assert recipe.nodes == 2 and recipe.checkpoint.world_size == 2


@pytest.mark.parametrize(("overrides", "expected"), [
    (["checkpoint.tp=2"], "dgx-spark has at most 1"),
    (["nodes=2", "checkpoint.tp=4"], "2 x dgx-spark has at most 2"),
    (["nodes=2"], "cannot be spread evenly over 2 nodes"),
    (["nodes=0"], "greater than or equal to 1"),
])
def test_nodes_rules_name_the_key_and_the_fix(overrides, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe(SPARK, overrides)
    assert any(expected in line for line in [info.value.message] + info.value.details), info.value.details


def test_multi_node_needs_a_gpu_platform():
    with pytest.raises(RecipeError) as info:
        load_recipe(RECIPES / "tiny-mixtral-nvfp4-cpu.yaml", ["nodes=2"])
    assert any("multi-node serving needs a GPU platform" in line for line in info.value.details)


def test_the_two_spark_recipe():
    recipe = load_recipe(TWO_SPARKS)
    assert recipe.platform.value == "dgx-spark" and recipe.nodes == 2
    assert (recipe.checkpoint.tp, recipe.checkpoint.pp) == (2, 1)
    # pytorch backend: trtllm-serve loads the ModelOpt checkpoint on each Spark; no per-rank engine build.
    assert recipe.build.backend.value == "pytorch" and recipe.format_info.is_nvfp4
    assert recipe.serve.host == "127.0.0.1"
    first = TWO_SPARKS.read_text().splitlines()[0]
    assert "orchestrator deploy" in first and "--target compose" in first
