"""`model:` — which Hugging Face model to start from."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator

from orchestrator.recipe.base import Section

BUILTIN_PREFIX = "builtin:"


class DType(str, Enum):
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"


class ModelSection(Section):
    source: str = Field(
        description="Hugging Face hub id (org/name), a local directory with config.json, or "
        "'builtin:tiny-mixtral' for the model shipped inside the package.",
        min_length=1,
    )
    revision: str | None = Field(
        default=None, description="Hub revision (commit sha, tag or branch). Pin a commit sha for reproducible runs."
    )
    dtype: DType = Field(default=DType.bfloat16, description="Dtype the model is loaded and exported in.")
    trust_remote_code: bool = Field(default=False, description="Allow model code from the hub repository to run.")
    num_experts: int | None = Field(
        default=None, gt=0,
        description="Number of MoE experts, when config.json is not at hand; used to check checkpoint.ep.",
    )

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype_aliases(cls, value: object) -> object:
        aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
        return aliases.get(value, value) if isinstance(value, str) else value

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith(BUILTIN_PREFIX)
