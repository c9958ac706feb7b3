"""The contract with TensorRT-LLM's real CLI, as read from its source (orchestrator/data/trtllm_cli.json).

Every flag the orchestrator emits, for every shipped recipe and stage, exists in the pinned
version's trtllm-build / trtllm-serve, every value of a flag with choices is one of them,
and every llm-api YAML key is one the spec lists. TensorRT-LLM cannot be installed here,
so this (with the goldens) is how build and serve are proven.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml

from orchestrator.errors import RecipeError
from orchestrator.images import load_lock
from orchestrator.recipe.loader import load_recipe, validate_recipe
from orchestrator.stages.build import build_argv, not_applicable
from orchestrator.stages.serve import llm_api_options, serve_argv
from orchestrator.stages.trtllm import pinned_image
from orchestrator.trtllm_spec import (
    check_argv,
    check_llm_api_options,
    llm_api_keys,
    load_spec,
    tool_spec,
    unknown_llm_api_keys,
)
from tests.conftest import RECIPES, REPO, SHIPPED_RECIPES

GPU_RECIPES = [p for p in SHIPPED_RECIPES if load_recipe(p).platform_info.has_gpu]
SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
B200 = RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml"
REFERENCE = REPO.parent / "shared" / "reference" / "trtllm-cli.json"


def _image_variants():
    """(recipe path, image tag) for every shipped GPU recipe x every locked image its backend can use."""
    lock = load_lock()
    out = []
    for path in GPU_RECIPES:
        backend = load_recipe(path).build.backend.value
        for tag, image in lock.images.items():
            if image.cli_spec is None or (backend == "tensorrt" and not image.ships_trtllm_build):
                continue
            out.append((path, tag))
    return out


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.stem)
def test_every_emitted_flag_and_value_exists_in_the_pinned_version(path):
    recipe = load_recipe(path)
    image = pinned_image(recipe)
    argvs = [serve_argv(recipe)]
    if not_applicable(recipe) is None:
        argvs.append(build_argv(recipe))
    for argv in argvs:
        assert check_argv(argv, image.cli_spec, image.trtllm) == [], argv


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.stem)
def test_llm_api_yaml_keys_are_listed_by_the_pinned_version(path):
    recipe = load_recipe(path)
    image = pinned_image(recipe)
    options = llm_api_options(recipe)
    assert unknown_llm_api_keys(options, image.cli_spec) == []
    assert check_llm_api_options(options, image.cli_spec) == []


@pytest.mark.parametrize("path,tag", _image_variants(), ids=lambda v: getattr(v, "stem", v))
def test_shipped_recipes_fit_every_locked_image_of_their_backend(path, tag):
    """The argv follows the version: the same recipe on a 1.2 and a main image stays valid for each."""
    recipe = load_recipe(path, [f"image={tag}"])
    image = pinned_image(recipe)
    assert check_argv(serve_argv(recipe), image.cli_spec) == []
    if not_applicable(recipe) is None:
        assert check_argv(build_argv(recipe), image.cli_spec) == []
    assert unknown_llm_api_keys(llm_api_options(recipe), image.cli_spec) == []


EVERYTHING_ON = [
    "build.moe_plugin=auto", "build.use_fp8_context_fmha=true", "build.kv_cache_type=paged",
    "build.gemm_plugin=nvfp4", "build.workers=1",
    "serve.llm_api_options={enable_iter_perf_stats: true, kv_cache_config: {enable_block_reuse: false}}",
]


@pytest.mark.parametrize("spec_image", ["1.2.0rc6", "1.3.0rc13"])
def test_every_flag_the_orchestrator_can_emit_exists(spec_image):
    """All optional parts switched on (moe_plugin, fp8 context FMHA, kv cache type, ep, llm-api YAML)."""
    base = B200 if spec_image.startswith("1.3") else SPARK
    extra = [] if base == B200 else EVERYTHING_ON
    recipe = load_recipe(base, [f"image={spec_image}", *extra, "serve.cuda_graphs=true"])
    image = pinned_image(recipe)
    argv = serve_argv(recipe)
    assert check_argv(argv, image.cli_spec) == []
    if base == SPARK:
        build = build_argv(recipe)
        assert check_argv(build, image.cli_spec) == []
        assert {"--moe_plugin", "--use_fp8_context_fmha", "--kv_cache_type"} <= set(build)
        assert "--extra_llm_api_options" in argv
    assert check_llm_api_options(llm_api_options(recipe), image.cli_spec) == []


# ---- the acceptance cases: a bad flag fails recipe validation, naming the flag and the TRT-LLM version ----

def _validate(path, overrides):
    data = yaml.safe_load(path.read_text())
    from orchestrator.recipe.loader import apply_overrides

    apply_overrides(data, overrides)
    with pytest.raises(RecipeError) as info:
        validate_recipe(copy.deepcopy(data))
    assert info.value.exit_code == 2
    return "\n".join(info.value.details)


def test_unknown_build_extra_flag_fails_validation_naming_flag_and_version():
    text = _validate(SPARK, ["build.extra_flags.use_magic=enable"])
    assert "build.extra_flags.use_magic" in text and "--use_magic" in text and "TRT-LLM 1.2.0rc6" in text


def test_gemm_plugin_outside_choices_fails_validation_naming_flag_and_version():
    text = _validate(SPARK, ["build.gemm_plugin=fp4"])
    assert "build.gemm_plugin='fp4'" in text and "--gemm_plugin" in text and "TRT-LLM 1.2.0rc6" in text
    assert "nvfp4" in text  # the choices are listed


def test_serve_flag_only_on_main_fails_on_a_1_2_image():
    text = _validate(SPARK, ["serve.extra_flags.kv_cache_dtype=fp8"])
    assert "serve.extra_flags.kv_cache_dtype" in text and "TRT-LLM 1.2.0rc6 (CLI spec 1.2)" in text


def test_llm_api_value_outside_choices_fails_validation():
    text = _validate(B200, ["serve.llm_api_options={moe_config: {backend: CUTLAS}}"])
    assert "serve.llm_api_options.moe_config.backend='CUTLAS'" in text and "CUTLASS" in text
    assert "TRT-LLM 1.3.0rc13" in text


def test_store_true_flag_given_a_value_fails_validation():
    text = _validate(SPARK, ["build.extra_flags.strip_plan=3"])
    assert "build.extra_flags.strip_plan" in text and "takes no value" in text


# ---- the spec itself: provenance, and reproducible from the shared reference ----

def test_every_part_of_the_spec_names_file_and_commit():
    spec = load_spec()
    assert set(spec["versions"]) == {"1.2", "main"}
    for version, data in spec["versions"].items():
        parts = list(data["tools"].values()) + [data["llm_api_yaml"]]
        for part in parts:
            assert part["provenance"], version
            for source in part["provenance"]:
                assert source["file"].startswith("tensorrt_llm/")
                assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])


def test_versions_differ_where_our_recipes_care():
    assert tool_spec("main", "trtllm-build") is None  # trtllm-build is gone on main
    assert "tensorrt" in tool_spec("1.2", "trtllm-serve").option("--backend").choices
    assert "tensorrt" not in tool_spec("main", "trtllm-serve").option("--backend").choices
    assert tool_spec("1.2", "trtllm-serve").option("--served_model_name") is None
    assert tool_spec("main", "trtllm-serve").option("--served_model_name") is not None
    assert "nvfp4" in tool_spec("1.2", "trtllm-build").option("--gemm_plugin").choices
    assert "moe_config.backend" in llm_api_keys("main")


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the shared reference is not next to this checkout")
def test_committed_spec_is_what_the_import_script_makes():
    script = REPO / "scripts" / "import_trtllm_spec.py"
    out = subprocess.run([sys.executable, script, str(REFERENCE), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
