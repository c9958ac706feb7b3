"""`build:` — the TensorRT-LLM backend and the trtllm-build engine limits."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from orchestrator.recipe.base import Section


class Backend(str, Enum):
    tensorrt = "tensorrt"
    pytorch = "pytorch"


class KVCacheType(str, Enum):
    continuous = "continuous"
    paged = "paged"
    disabled = "disabled"


FlagValue = str | int | float | bool


class BuildSection(Section):
    backend: Backend = Field(
        default=Backend.tensorrt,
        description="tensorrt: trtllm-build an engine (TRT-LLM <=1.2.x images); "
        "pytorch: serve the checkpoint directly (TRT-LLM >=1.3, no build stage).",
    )
    # A string checked against the pinned TRT-LLM version's choices (orchestrator/data/trtllm_cli.json),
    # not an enum, so a bad value is reported with the flag and the TRT-LLM version it was checked against.
    gemm_plugin: str | None = Field(
        default=None, description="trtllm-build --gemm_plugin (TRT-LLM 1.2: auto, float16, float32, bfloat16, int32, "
        "fp8, nvfp4, disable); default: what the format needs (nvfp4 for NVFP4).",
    )
    moe_plugin: str | None = Field(default=None, description="trtllm-build --moe_plugin (auto, bfloat16, disable, ...).")
    use_fp8_context_fmha: bool | None = Field(
        default=None, description="trtllm-build --use_fp8_context_fmha; default: TRT-LLM's own (enable)."
    )
    kv_cache_type: KVCacheType | None = Field(default=None, description="trtllm-build --kv_cache_type.")
    max_batch_size: int = Field(default=8, gt=0, le=4096, description="Largest batch the engine serves.")
    max_input_len: int = Field(default=4096, gt=0, description="Longest prompt in tokens.")
    max_seq_len: int = Field(default=8192, gt=0, description="Longest prompt + output in tokens.")
    max_num_tokens: int = Field(default=8192, gt=0, description="Tokens per engine step (in-flight batching budget).")
    workers: int = Field(default=1, ge=1, le=64, description="trtllm-build --workers (parallel per-rank builds).")
    extra_flags: dict[str, FlagValue] = Field(
        default_factory=dict,
        description="More trtllm-build flags, as {flag: value} without the leading '--'; "
        "checked against the pinned TRT-LLM version's CLI.",
    )
