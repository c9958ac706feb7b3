"""A table of bad recipes: each fails validation with exit 2 and a message naming the key and the fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from orchestrator.errors import RecipeError
from orchestrator.recipe.loader import apply_overrides, validate_recipe
from tests.conftest import RECIPES

SPARK = yaml.safe_load((RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml").read_text())
CPU = yaml.safe_load((RECIPES / "tiny-mixtral-nvfp4-cpu.yaml").read_text())
B200 = yaml.safe_load((RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml").read_text())


def _delete(key):
    def mutate(data):
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        del node[last]
    return mutate


# (id, base, overrides or mutator, expected fragments)
CASES = [
    # unknown keys at every level
    ("unknown-top", SPARK, ["modle={source: x/y}"], ["modle", "unknown key", "did you mean 'model'"]),
    ("unknown-model", SPARK, ["model.revison=abc"], ["model.revison", "did you mean 'revision'"]),
    ("unknown-quantize", SPARK, ["quantize.formt=fp8"], ["quantize.formt", "did you mean 'format'"]),
    ("unknown-calibration", SPARK, ["quantize.calibration.sample=3"], ["quantize.calibration.sample", "unknown key"]),
    ("unknown-checkpoint", SPARK, ["checkpoint.tensor_parallel=2"], ["checkpoint.tensor_parallel", "unknown key"]),
    ("unknown-build", SPARK, ["build.max_batch=4"], ["build.max_batch", "unknown key"]),
    ("unknown-serve", SPARK, ["serve.hostname=0.0.0.0"], ["serve.hostname", "unknown key"]),
    ("unknown-eval", SPARK, ["eval.perplexity.ratio=1.1"], ["eval.perplexity.ratio", "did you mean 'max_ratio'"]),
    ("unknown-bench", SPARK, ["bench.concurency=[1]"], ["bench.concurency", "did you mean 'concurrency'"]),
    ("unknown-run", SPARK, ["run.untill=convert"], ["run.untill", "unknown key"]),
    # missing and wrong types
    ("missing-name", SPARK, _delete("name"), ["name", "required key is missing"]),
    ("missing-model", SPARK, _delete("model"), ["model", "required key is missing"]),
    ("missing-source", SPARK, _delete("model.source"), ["model.source", "required key is missing"]),
    ("bad-name", SPARK, ["name=Mixtral 8x7B!"], ["name=", "lowercase"]),
    ("samples-type", SPARK, ["quantize.calibration.samples=lots"], ["quantize.calibration.samples", "integer"]),
    ("port-type", SPARK, ["serve.port=http"], ["serve.port", "integer"]),
    ("exclude-type", SPARK, ["quantize.exclude=lm_head"], ["quantize.exclude", "list"]),
    ("layerwise-type", SPARK, ["quantize.layerwise=sometimes"], ["quantize.layerwise", "boolean"]),
    ("concurrency-type", SPARK, ["bench.concurrency=four"], ["bench.concurrency", "list"]),
    # enums
    ("bad-format", SPARK, ["quantize.format=nvfp3"], ["quantize.format", "nvfp4"]),
    ("bad-platform", SPARK, ["platform=tpu-v5"], ["platform", "dgx-spark"]),
    ("bad-backend", SPARK, ["build.backend=onnx"], ["build.backend", "tensorrt"]),
    ("bad-gemm-plugin", SPARK, ["build.gemm_plugin=int4"], ["build.gemm_plugin", "nvfp4"]),
    ("bad-kv-cache", SPARK, ["quantize.kv_cache=int8"], ["quantize.kv_cache", "fp8"]),
    ("bad-dtype", SPARK, ["model.dtype=int8"], ["model.dtype", "bfloat16"]),
    ("bad-runtime", SPARK, ["runtime=podman"], ["runtime", "docker"]),
    # ranges
    ("samples-zero", SPARK, ["quantize.calibration.samples=0"], ["quantize.calibration.samples=0", "greater than 0"]),
    ("seq-negative", SPARK, ["quantize.calibration.seq_len=-5"], ["quantize.calibration.seq_len=-5", "greater than 0"]),
    ("batch-zero", SPARK, ["quantize.calibration.batch_size=0"], ["quantize.calibration.batch_size", "positive"]),
    ("port-range", SPARK, ["serve.port=70000"], ["serve.port=70000", "less than or equal to 65535"]),
    ("port-zero", SPARK, ["serve.port=0"], ["serve.port=0", "greater than or equal to 1"]),
    ("tp-zero", SPARK, ["checkpoint.tp=0"], ["checkpoint.tp=0", "greater than or equal to 1"]),
    ("memfrac", SPARK, ["serve.free_gpu_memory_fraction=1.5"], ["serve.free_gpu_memory_fraction", "less than or equal"]),
    ("max-ratio", SPARK, ["eval.perplexity.max_ratio=0.9"], ["eval.perplexity.max_ratio", "greater than or equal to 1"]),
    ("batch-size-neg", SPARK, ["build.max_batch_size=-1"], ["build.max_batch_size=-1", "greater than 0"]),
    # cross-field rules
    ("nvfp4-on-hopper", SPARK, ["platform=h100"], ["platform='h100'", "Blackwell", "SM90", "fp8"]),
    ("nvfp4-kv-on-hopper", SPARK, ["platform=h100", "quantize.format=fp8", "build.gemm_plugin=null",
                                   "quantize.kv_cache=nvfp4"], ["quantize.kv_cache", "Blackwell"]),
    ("tp-exceeds-gpus", SPARK, ["checkpoint.tp=2"], ["checkpoint.tp=2", "dgx-spark has at most 1"]),
    ("ep-not-dividing-tp", B200, ["checkpoint.ep=4"], ["checkpoint.ep=4", "must divide checkpoint.tp"]),
    ("gpus-on-cpu", CPU, ["quantize.gpus=2"], ["quantize.gpus=2", "needs a GPU platform"]),
    ("gpus-exceed-host", SPARK, ["quantize.gpus=2"], ["quantize.gpus=2", "dgx-spark has at most 1"]),
    ("fsdp2-awq", B200, ["quantize.gpus=2", "quantize.format=nvfp4_awq"],
     ["quantize.parallel='fsdp2'", "awq_lite", "quantize.parallel: layers"]),
    ("fsdp2-stream", B200, ["quantize.gpus=2", "quantize.memory=stream"],
     ["quantize.memory='stream'", "shards the weights"]),
    ("fsdp2-layerwise", B200, ["quantize.gpus=2", "quantize.layerwise=true"], ["quantize.layerwise=True", "one process"]),
    ("ep-not-dividing-experts", B200, ["checkpoint.tp=6", "checkpoint.ep=3"], ["checkpoint.ep=3", "8 experts"]),
    ("nvfp4-plugin-with-fp8", SPARK, ["quantize.format=fp8"], ["build.gemm_plugin='nvfp4'", "NVFP4 format"]),
    ("input-ge-seq", SPARK, ["build.max_input_len=8192"], ["build.max_input_len=8192", "below build.max_seq_len"]),
    ("pytorch-with-gemm-plugin", SPARK, ["build.backend=pytorch"], ["build.gemm_plugin", "backend: pytorch"]),
    ("tensorrt-kv-dtype", SPARK, ["serve.kv_cache_dtype=fp8"], ["serve.kv_cache_dtype", "auto"]),
    ("unversioned-image", SPARK, ["image=spark-single-gpu-dev"], ["image=", "TensorRT-LLM version"]),
    ("tensorrt-on-1.3", SPARK, ["image=1.3.0rc13"], ["build.backend='tensorrt'", "not known to ship trtllm-build"]),
    ("missing-local-model", CPU, ["model.source=./no/such/model"], ["model.source", "not found"]),
    ("unknown-builtin", CPU, ["model.source=builtin:huge-model"], ["model.source", "no built-in model"]),
    ("calibration-file-missing", SPARK, ["quantize.calibration.dataset=/nope/cal.jsonl"],
     ["quantize.calibration.dataset", "file not found"]),
    ("calibration-bad-name", SPARK, ["quantize.calibration.dataset=imagenet"],
     ["quantize.calibration.dataset", "c4"]),
    ("builtin-calibration-for-hub-model", SPARK, ["quantize.calibration.dataset=builtin"],
     ["quantize.calibration.dataset", "builtin: model"]),
    ("stride-gt-seq", SPARK, ["eval.perplexity.stride=4096"], ["eval.perplexity.stride", "<= eval.perplexity.seq_len"]),
    ("bench-exceeds-input", SPARK, ["bench.input_len=5000"], ["bench.input_len", "max_input_len"]),
]


@pytest.mark.parametrize("case_id,base,change,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_recipe_is_rejected(case_id, base, change, fragments):
    data = copy.deepcopy(base)
    if callable(change):
        change(data)
    else:
        apply_overrides(data, change)
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    assert info.value.exit_code == 2
    text = "\n".join([info.value.message, *info.value.details])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_all_problems_are_reported_at_once():
    data = copy.deepcopy(SPARK)
    apply_overrides(data, ["serve.port=0", "quantize.calibration.samples=0", "build.max_batch=3"])
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    assert len(info.value.details) == 3


def test_cross_field_problems_are_reported_at_once():
    data = copy.deepcopy(SPARK)
    apply_overrides(data, ["platform=h100", "checkpoint.tp=16", "build.max_input_len=9000"])
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    keys = [d.split("=")[0] for d in info.value.details]
    assert {"platform", "checkpoint.tp", "build.max_input_len"} <= set(keys)


def test_table_is_large_enough():
    assert len(CASES) >= 30


def test_moe_backend_with_tensorrt_backend_is_rejected():
    data = copy.deepcopy(SPARK)
    apply_overrides(data, ["serve.moe_backend=CUTLASS"])
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    assert any(d.startswith("serve.moe_backend='CUTLASS'") and "pytorch-backend" in d for d in info.value.details)
