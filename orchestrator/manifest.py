"""`<workdir>/manifest.json`: per stage what was made, from what (fingerprint), when, and with what.

Schema (schema_version 1):
{
  "schema_version": 1, "recipe": name, "recipe_path": str, "updated_at": iso,
  "stages": {
    "<stage>": {
      "status": "done" | "failed" | "skipped" | "running",
      "fingerprint": sha256 hex | null, "reason": str (skipped/failed),
      "started_at": iso, "ended_at": iso, "duration_s": float,
      "peak_cpu_mem_gb": float | null, "peak_gpu_mem_gb": float | null,
      "artifacts": {"<name>": {"path": str, "bytes": int}},
      "versions": {"<package>": version}, "host": str, "gpu": str | null,
      "metrics": {... stage-specific numbers: calibration, sizes, perplexity, bench ...}
    }
  }
}
Every write is atomic (temporary file + rename).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json

SCHEMA_VERSION = 1


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class StageRecord:
    status: str
    fingerprint: str | None = None
    reason: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    peak_cpu_mem_gb: float | None = None
    peak_gpu_mem_gb: float | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    host: str | None = None
    gpu: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    recipe: str
    recipe_path: str | None = None
    stages: dict[str, StageRecord] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_manifest(path: Path, recipe_name: str | None = None) -> Manifest:
    """The manifest at `path`, or an empty one when there is none yet."""
    if not path.is_file():
        return Manifest(recipe=recipe_name or "")
    from orchestrator.errors import UserError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable manifest ({type(exc).__name__})",
                        hint="move manifest.json aside; the next run rebuilds it (and re-runs the stages)") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        data = data if isinstance(data, dict) else {}
        raise UserError(f"{path}: manifest schema_version {data.get('schema_version')} is not {SCHEMA_VERSION}",
                        hint="move the workdir aside or delete manifest.json to start over")
    try:
        stages = {name: StageRecord(**rec) for name, rec in (data.get("stages") or {}).items()}
    except TypeError as exc:
        raise UserError(f"{path}: a stage record does not fit schema_version {SCHEMA_VERSION} ({exc})",
                        hint="move manifest.json aside; the next run rebuilds it") from None
    return Manifest(recipe=data.get("recipe", recipe_name or ""), recipe_path=data.get("recipe_path"), stages=stages,
                    updated_at=data.get("updated_at"))


def save_manifest(path: Path, manifest: Manifest) -> None:
    manifest.updated_at = now_iso()
    atomic_write_json(path, manifest.to_dict())


def record_stage(path: Path, recipe_name: str, stage: str, record: StageRecord) -> Manifest:
    """Read-modify-write one stage's record."""
    manifest = load_manifest(path, recipe_name)
    manifest.recipe = recipe_name
    manifest.stages[stage] = record
    save_manifest(path, manifest)
    return manifest
