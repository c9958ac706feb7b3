"""The whole recipe: one deployment, validated section by section."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator

from orchestrator.platforms import FORMATS, PLATFORMS, Format, Platform
from orchestrator.recipe.base import Section
from orchestrator.recipe.bench import BenchSection
from orchestrator.recipe.build import BuildSection
from orchestrator.recipe.checkpoint import CheckpointSection
from orchestrator.recipe.evaluate import EvalSection
from orchestrator.recipe.model import ModelSection
from orchestrator.recipe.quantize import QuantizeSection
from orchestrator.recipe.serve import ServeSection

PlatformName = Enum("PlatformName", {name.replace("-", "_"): name for name in PLATFORMS}, type=str)  # type: ignore[misc]

# The stage graph's order; `orchestrator.pipeline` owns what each stage does.
STAGE_ORDER = ("fetch", "quantize", "convert", "build", "verify", "eval", "card", "serve", "bench")
StageName = Enum("StageName", {name: name for name in STAGE_ORDER}, type=str)  # type: ignore[misc]


class Runtime(str, Enum):
    auto = "auto"
    local = "local"
    docker = "docker"


class RunSection(Section):
    until: StageName | None = Field(
        default=None, description="Last stage `orchestrator run` executes (e.g. convert on a GPU that cannot serve)."
    )
    serve: bool = Field(default=False, description="Include serve (detached) in `orchestrator run`.")
    bench: bool = Field(default=False, description="Include bench in `orchestrator run` (implies serve).")


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class Recipe(Section):
    name: str = Field(description="Deployment name: lowercase letters, digits, '.', '_' and '-'.")
    model: ModelSection = Field(description="The source model.")
    platform: PlatformName = Field(description="Target platform; picks GPU arch, GPU count and image.")
    # Beside `platform` rather than in `checkpoint:`: it counts machines, and the rank files
    # are the same whether tp x pp ranks sit on one node or several.
    nodes: int = Field(
        default=1, ge=1, le=64,
        description="How many `platform` machines serve together (e.g. 2 DGX Sparks linked over ConnectX-7); "
        "checkpoint.tp x pp may use up to nodes x the platform's GPUs, spread evenly over the nodes.",
    )
    runtime: Runtime = Field(
        default=Runtime.auto,
        description="Where TRT-LLM commands run: local (tools on PATH), docker (pinned image), auto (local if found).",
    )
    image: str | None = Field(
        default=None,
        description="Override of the pinned TRT-LLM image: a tag of nvcr.io/nvidia/tensorrt-llm/release or a full "
        "reference; checked against the CLI specs we know.",
    )
    quantize: QuantizeSection = Field(default_factory=QuantizeSection, description="Quantization with modelopt.")
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection, description="TRT-LLM checkpoint mapping.")
    build: BuildSection = Field(default_factory=BuildSection, description="Backend and engine build.")
    serve: ServeSection = Field(default_factory=ServeSection, description="Serving endpoint.")
    eval: EvalSection = Field(default_factory=EvalSection, description="Accuracy gate.")
    bench: BenchSection = Field(default_factory=BenchSection, description="Endpoint benchmark.")
    run: RunSection = Field(default_factory=RunSection, description="What `orchestrator run` covers.")
    workdir: Path | None = Field(default=None, description="Where artifacts go; default work/<name>.")

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use lowercase letters, digits, '.', '_' and '-' (at most 100), starting alnum")
        return value

    @field_validator("platform", mode="before")
    @classmethod
    def _platform_alias(cls, value: object) -> object:
        aliases = {"spark": "dgx-spark", "gb10": "dgx-spark", "rtx-pro": "rtx-pro-6000", "rtx6000": "rtx-pro-6000"}
        return aliases.get(value.lower(), value.lower()) if isinstance(value, str) else value

    # Typed accessors so callers never look facts up by string.
    @property
    def platform_info(self) -> Platform:
        return PLATFORMS[self.platform.value]

    @property
    def format_info(self) -> Format:
        return FORMATS[self.quantize.format.value]

    @property
    def resolved_workdir(self) -> Path:
        return Path(self.workdir) if self.workdir is not None else Path("work") / self.name

    @property
    def source_path(self) -> Path | None:
        """The YAML file this recipe came from (None when built in code)."""
        return self._source_path

    def stage_runs(self, stage: str) -> bool:
        """Whether `stage` is within `run.until` (serve/bench also need run.serve/run.bench)."""
        if self.run.until is not None and STAGE_ORDER.index(stage) > STAGE_ORDER.index(self.run.until.value):
            return False
        return True
