"""Where each artifact lives inside a workdir. One place, so stages and the plan agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkdirLayout:
    root: Path

    @property
    def source_model(self) -> Path:
        return self.root / "model"  # fetched hub snapshot (or a link to the local model)

    @property
    def checkpoint_hf(self) -> Path:
        return self.root / "checkpoint-hf"

    @property
    def modelopt_state(self) -> Path:
        return self.root / "modelopt-state"

    @property
    def layerwise_checkpoints(self) -> Path:
        return self.root / "layerwise-calib"

    @property
    def checkpoint_trtllm(self) -> Path:
        return self.root / "checkpoint-trtllm"

    @property
    def engine(self) -> Path:
        return self.root / "engine"

    @property
    def llm_api_options(self) -> Path:
        return self.root / "llm-api-options.yaml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def bench_json(self) -> Path:
        return self.root / "bench.json"

    @property
    def eval_json(self) -> Path:
        return self.root / "eval.json"

    @property
    def serve_state(self) -> Path:
        return self.root / "serve.json"

    def log(self, stage: str) -> Path:
        return self.logs / f"{stage}.log"
