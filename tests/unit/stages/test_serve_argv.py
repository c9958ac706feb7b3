"""The serve stage's argv and llm-api YAML follow the pinned TRT-LLM version."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.recipe.loader import load_recipe
from orchestrator.stages.serve import llm_api_yaml, reported_model_name, serve_argv
from tests.conftest import RECIPES

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
B200 = RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml"


def test_tensorrt_on_1_2_serves_the_engine_with_tokenizer_and_no_name_flag():
    recipe = load_recipe(SPARK)
    argv = serve_argv(recipe)
    assert argv[:6] == ["trtllm-serve", "work/mixtral-8x7b-instruct-nvfp4/engine", "--tokenizer",
                        "work/mixtral-8x7b-instruct-nvfp4/checkpoint-hf", "--backend", "tensorrt"]
    assert "--served_model_name" not in argv and "--extra_llm_api_options" not in argv
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert reported_model_name(recipe) == "engine"  # what trtllm-serve 1.2 lists for an engine dir
    assert llm_api_yaml(recipe) is None


def test_pytorch_on_main_names_the_model_and_passes_the_yaml():
    recipe = load_recipe(B200)
    argv = serve_argv(recipe)
    assert argv[1] == "work/mixtral-8x7b-instruct-nvfp4-b200/checkpoint-hf"
    assert "--backend" not in argv  # deprecated on main, and pytorch is its default
    assert argv[argv.index("--served_model_name") + 1] == "mixtral-8x7b-instruct-nvfp4-b200"
    assert argv[-2:] == ["--extra_llm_api_options", "work/mixtral-8x7b-instruct-nvfp4-b200/llm-api-options.yaml"]
    assert argv[argv.index("--ep_size") + 1] == "2"
    options = yaml.safe_load(llm_api_yaml(recipe))
    assert options == {"kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.9},
                       "cuda_graph_config": {"enable_padding": True, "max_batch_size": 64},
                       "moe_config": {"backend": "CUTLASS"}}
    assert reported_model_name(recipe) == "mixtral-8x7b-instruct-nvfp4-b200"


def test_pytorch_on_a_1_2_image_keeps_backend_and_drops_the_name_flag():
    argv = serve_argv(load_recipe(B200, ["image=1.2.0rc6"]))
    assert argv[2:4] == ["--backend", "pytorch"] and "--served_model_name" not in argv


def test_moe_backend_auto_is_cutlass_only_for_nvfp4_on_blackwell():
    fp8 = load_recipe(B200, ["quantize.format=fp8", "serve.kv_cache_dtype=auto"])
    assert "moe_config" not in yaml.safe_load(llm_api_yaml(fp8))
    no_graphs = yaml.safe_load(llm_api_yaml(load_recipe(B200, ["serve.cuda_graphs=false"])))
    assert "cuda_graph_config" not in no_graphs


def test_user_llm_api_options_merge_and_reach_the_tensorrt_backend_too():
    merged = yaml.safe_load(llm_api_yaml(load_recipe(B200, [
        "serve.llm_api_options={kv_cache_config: {enable_block_reuse: false}, enable_iter_perf_stats: true}"])))
    assert merged["kv_cache_config"] == {"dtype": "fp8", "free_gpu_memory_fraction": 0.9, "enable_block_reuse": False}
    assert merged["enable_iter_perf_stats"] is True
    trt = load_recipe(SPARK, ["serve.llm_api_options={enable_iter_perf_stats: true}"])
    assert "--extra_llm_api_options" in serve_argv(trt)
    assert yaml.safe_load(llm_api_yaml(trt)) == {"enable_iter_perf_stats": True}


def test_extra_flags_render_per_type():
    argv = serve_argv(load_recipe(B200, ["serve.extra_flags={trust_remote_code: true, telemetry: false, "
                                         "enable_chunked_prefill: false, log_level: warning}"]))
    assert argv[-4:] == ["--trust_remote_code", "--no-telemetry", "--log_level", "warning"]


def test_paths_are_mapped_as_the_runner_sees_them():
    argv = serve_argv(load_recipe(B200), path_in_runtime=lambda p: Path("/workspace") / p.name)
    assert argv[1] == "/workspace/checkpoint-hf" and argv[-1] == "/workspace/llm-api-options.yaml"





def test_cpu_serves_the_reference_engine_never_trtllm():
    from orchestrator.stages.serve import server_argv

    recipe = load_recipe(RECIPES / "tiny-mixtral-nvfp4-cpu.yaml", ["serve.port=8123"])
    argv = server_argv(recipe)
    assert argv[1:4] == ["-m", "transformers.commands.transformers_cli", "serve"]
    assert "trtllm-serve" not in argv and argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
