"""orchestrator.trtllm_spec: flag lookup, value rendering per type, argv and llm-api checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.trtllm_spec import (
    check_argv,
    check_flags,
    check_llm_api_options,
    first_flag,
    has_flag,
    render_flag,
    tool_spec,
    unknown_llm_api_keys,
)


@pytest.mark.parametrize("name,value,tokens", [
    ("strip_plan", True, ["--strip_plan"]),                      # store_true: bare flag
    ("strip_plan", False, []),                                   # store_true off: left out
    ("use_fp8_context_fmha", True, ["--use_fp8_context_fmha", "enable"]),   # plugin switch
    ("use_fp8_context_fmha", False, ["--use_fp8_context_fmha", "disable"]),
    ("--gemm_plugin", "nvfp4", ["--gemm_plugin", "nvfp4"]),      # leading dashes accepted
    ("max_batch_size", 8, ["--max_batch_size", "8"]),
])
def test_render_build_flags_follow_the_spec_types(name, value, tokens):
    assert render_flag("1.2", "trtllm-build", name, value) == tokens


def test_render_click_on_off_pair_and_float():
    assert render_flag("main", "trtllm-serve", "telemetry", False) == ["--no-telemetry"]
    assert render_flag("main", "trtllm-serve", "telemetry", True) == ["--telemetry"]
    assert render_flag("main", "trtllm-serve", "enable_attention_dp", True) == ["--enable_attention_dp"]
    assert render_flag("1.2", "trtllm-serve", "kv_cache_free_gpu_memory_fraction", 0.85) == [
        "--kv_cache_free_gpu_memory_fraction", "0.85"]


def test_check_flags_names_flag_and_version():
    problems = check_flags("1.2", "trtllm-build", {"gemm_plugin": "fp4", "no_such": 1, "workers": "two",
                                                   "strip_plan": 3, "max_batch_size": True}, trtllm="1.2.0rc6")
    text = {p.flag: p.message for p in problems}
    assert set(text) == {"--gemm_plugin", "--no_such", "--workers", "--strip_plan", "--max_batch_size"}
    assert all("trtllm-build of TRT-LLM 1.2.0rc6 (CLI spec 1.2)" in m for m in text.values())
    assert "nvfp4" in text["--gemm_plugin"] and "has no flag --no_such" in text["--no_such"]
    assert "integer" in text["--workers"] and "takes no value" in text["--strip_plan"]


def test_check_flags_suggests_a_close_flag():
    [problem] = check_flags("1.2", "trtllm-build", {"max_batch_sze": 4})
    assert "did you mean --max_batch_size" in problem.message


def test_check_argv_good_and_bad():
    good = ["trtllm-serve", "eng", "--tokenizer", "tok", "--backend", "trt", "--port", "8000",
            "--trust_remote_code", "--kv_cache_free_gpu_memory_fraction=0.8"]
    assert check_argv(good, "1.2") == []  # 'trt' is an alias of tensorrt; --x=v form
    bad = check_argv(["trtllm-serve", "eng", "extra", "--port", "http", "--tp_size", "1", "--tensor_parallel_size",
                      "2", "--trust_remote_code=1", "--host"], "1.2")
    messages = " | ".join(str(p) for p in bad)
    assert "unexpected extra" in messages and "takes an integer" in messages and "given twice" in messages
    assert "switch that takes no value" in messages and "--host" in messages and "needs a value" in messages


def test_check_argv_missing_positional_and_missing_tool():
    assert "needs MODEL" in str(check_argv(["trtllm-serve", "--port", "1"], "main")[0])
    [problem] = check_argv(["trtllm-build", "--workers", "1"], "main")
    assert "TRT-LLM main has no trtllm-build" in problem.message


def test_version_dependent_flags():
    assert has_flag("main", "trtllm-serve", "--served_model_name")
    assert not has_flag("1.2", "trtllm-serve", "--served_model_name")
    assert first_flag("1.2", "trtllm-serve", ("--extra_llm_api_options", "--config")) == "--extra_llm_api_options"
    assert first_flag("main", "trtllm-serve", ("--nope", "--config")) == "--config"
    assert tool_spec("1.2", "trtllm-build").option("--max_decoder_seq_len").name == "--max_seq_len"


def test_unknown_version_is_a_user_error():
    with pytest.raises(UserError, match="no TensorRT-LLM CLI spec '0.9'"):
        tool_spec("0.9", "trtllm-serve")


def test_llm_api_checks_values_types_and_choices():
    options = {"moe_config": {"backend": "CUTLASS", "use_low_precision_moe_combine": "yes"},
               "kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.9, "max_tokens": None},
               "cuda_graph_config": {"batch_sizes": [1, 2, 4], "enable_padding": True},
               "nvfp4_gemm_config": {"allowed_backends": ["cutlass", "tensorcore"]},
               "allreduce_strategy": "AUTO", "something_unlisted": {"x": 1}}
    problems = {p.flag: p.message for p in check_llm_api_options(options, "1.2", trtllm="1.2.0rc6")}
    assert set(problems) == {"moe_config.use_low_precision_moe_combine", "nvfp4_gemm_config.allowed_backends"}
    assert "takes a bool" in problems["moe_config.use_low_precision_moe_combine"]
    assert "TRT-LLM 1.2.0rc6" in problems["nvfp4_gemm_config.allowed_backends"]
    # the reference lists only some LlmArgs keys: unlisted ones are not errors, but can be listed
    assert unknown_llm_api_keys(options, "1.2") == ["something_unlisted.x"]


def test_cuda_graph_config_null_is_allowed():
    assert check_llm_api_options({"cuda_graph_config": None}, "main") == []


def test_importing_the_module_does_not_read_the_spec():
    code = ("import orchestrator.trtllm_spec as s; assert s.load_spec.cache_info().currsize == 0; "
            "s.has_flag('1.2', 'trtllm-build', '--workers'); assert s.load_spec.cache_info().currsize == 1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
