"""`checkpoint:` — the TensorRT-LLM checkpoint's parallel mapping."""

from __future__ import annotations

from pydantic import Field

from orchestrator.recipe.base import Section


class CheckpointSection(Section):
    tp: int = Field(default=1, ge=1, le=64, description="Tensor-parallel size (rank files = tp x pp).")
    pp: int = Field(default=1, ge=1, le=64, description="Pipeline-parallel size.")
    ep: int = Field(default=1, ge=1, le=64, description="MoE expert-parallel size; must divide the expert count.")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp
