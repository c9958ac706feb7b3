"""`serve:` — where and how trtllm-serve (or the CPU reference engine) listens."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field

from orchestrator.recipe.base import Section
from orchestrator.recipe.build import FlagValue


class MoeBackend(str, Enum):
    auto = "auto"
    CUTLASS = "CUTLASS"
    CUTEDSL = "CUTEDSL"
    WIDEEP = "WIDEEP"
    TRTLLM = "TRTLLM"
    DEEPGEMM = "DEEPGEMM"
    VANILLA = "VANILLA"
    TRITON = "TRITON"


class KVCacheDType(str, Enum):
    auto = "auto"
    fp8 = "fp8"
    nvfp4 = "nvfp4"


class ServeSection(Section):
    host: str = Field(default="127.0.0.1", description="Address to bind; 127.0.0.1 unless you mean to expose it.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port of the OpenAI-compatible server.")
    health_timeout_s: float = Field(
        default=1800, gt=0, description="Seconds to wait for /health after launch (big models load for minutes)."
    )
    served_model_name: str | None = Field(default=None, description="Model name the API reports; default: recipe name.")
    free_gpu_memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="Share of free GPU memory the KV cache may take."
    )
    kv_cache_dtype: KVCacheDType = Field(
        default=KVCacheDType.auto, description="KV-cache dtype (pytorch backend llm-api kv_cache_config.dtype)."
    )
    cuda_graphs: bool = Field(default=True, description="Capture CUDA graphs for decode (pytorch backend).")
    moe_backend: MoeBackend = Field(
        default=MoeBackend.auto, description="llm-api moe_config.backend; auto = CUTLASS on Blackwell MoE platforms."
    )
    gpus: list[int] | Literal["all"] = Field(default="all", description="GPU ids for the container, or 'all'.")
    llm_api_options: dict[str, Any] = Field(
        default_factory=dict,
        description="More llm-api YAML options (merged over the generated ones); keys checked against the pinned "
        "TRT-LLM version where known.",
    )
    extra_flags: dict[str, FlagValue] = Field(
        default_factory=dict, description="More trtllm-serve flags, {flag: value} without '--'."
    )
