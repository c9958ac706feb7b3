"""`quantize:` — the modelopt format, calibration data and memory strategy."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, field_validator

from orchestrator.platforms import FORMATS, KV_CACHE_FORMATS
from orchestrator.recipe.base import Section

QuantFormat = Enum("QuantFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
KVCacheFormat = Enum("KVCacheFormat", {name: name for name in KV_CACHE_FORMATS}, type=str)  # type: ignore[misc]


class QuantMemory(str, Enum):
    auto = "auto"
    gpu = "gpu"
    offload = "offload"
    layerwise = "layerwise"
    stream = "stream"


class QuantParallel(str, Enum):
    fsdp2 = "fsdp2"
    layers = "layers"


class QuantDevice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


NAMED_DATASETS = ("c4", "cnn_dailymail", "wikitext", "pile", "builtin")


class CalibrationSection(Section):
    dataset: str = Field(
        default="c4",
        description="A named dataset (c4, cnn_dailymail, wikitext, pile; fetched through `datasets`), "
        "'builtin' for the embedded model's own calibration text, or a local .txt/.jsonl file.",
        min_length=1,
    )
    samples: int = Field(default=512, gt=0, le=100_000, description="Number of calibration samples.")
    seq_len: int = Field(default=512, gt=0, le=131_072, description="Tokens per calibration sample.")
    batch_size: int | Literal["auto"] = Field(
        default="auto", description="Samples per calibration batch, or 'auto' for the largest that fits."
    )
    seed: int = Field(default=0, ge=0, description="Seed for sample selection; the same seed picks the same samples.")

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("must be a positive integer or 'auto'")
        return value


class QuantizeSection(Section):
    format: QuantFormat = Field(default="nvfp4", description="Quantization format (modelopt config).")
    kv_cache: KVCacheFormat = Field(default="fp8", description="KV-cache quantization: none, fp8 or nvfp4.")
    exclude: list[str] = Field(
        default_factory=lambda: ["lm_head", "*block_sparse_moe.gate*"],
        description="Module name patterns (fnmatch) left unquantized, added to modelopt's defaults.",
    )
    calibration: CalibrationSection = Field(default_factory=CalibrationSection, description="Calibration data.")
    layerwise: bool = Field(
        default=False, description="Calibrate one decoder layer at a time with modelopt's resumable layerwise mode."
    )
    memory: QuantMemory = Field(
        default=QuantMemory.auto,
        description="Where weights live during calibration: gpu (all on the GPU), stream (CPU memory, each "
        "decoder layer moved to the GPU once, layerwise), offload (accelerate device_map, weights re-sent per "
        "batch), layerwise (on the GPU, modelopt layerwise), or auto (gpu when the weights fit, else stream).",
    )
    device: QuantDevice = Field(default=QuantDevice.auto, description="Calibration device; auto = GPU when present.")
    gpus: int = Field(
        default=1, ge=1, le=8,
        description="GPUs of this host calibration runs on (with memory gpu/auto); how: quantize.parallel.",
    )
    parallel: QuantParallel = Field(
        default=QuantParallel.fsdp2,
        description="With quantize.gpus > 1: fsdp2 (torchrun starts one process per GPU, FSDP2 shards every "
        "weight over them and each calibrates its share of the samples; modelopt's distributed PTQ path, max "
        "calibration only) or layers (one process, accelerate places whole decoder layers on the GPUs in turn, "
        "as modelopt's hf_ptq does; any format).",
    )

    @property
    def multi_gpu(self) -> str | None:
        """How calibration uses several GPUs: "fsdp2" or "layers" (quantize.parallel); None on one."""
        return self.parallel.value if self.gpus > 1 else None

    @field_validator("format", "kv_cache", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower().replace("-", "_") if isinstance(value, str) else value
