"""Verify the checkpoints of a recipe's workdir, recorded as the manifest's verify stage."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import StageRecord, now_iso
from orchestrator.stages.verify.report import VerifyReport


@dataclass
class WorkdirVerification:
    reports: list[VerifyReport]
    started_at: str
    duration_s: float
    versions: dict = field(default_factory=dict)

    def stage_record(self) -> StageRecord:
        return StageRecord(
            status="done", started_at=self.started_at, ended_at=now_iso(), duration_s=self.duration_s,
            artifacts={r.kind: {"path": r.path, "bytes": r.checkpoint_bytes} for r in self.reports},
            host=platform.node(), versions=self.versions,
            metrics={r.kind: r.as_dict() for r in self.reports})


def verify_workdir(recipe, *, original: Path | None = None) -> list[VerifyReport]:
    """verify_checkpoint on checkpoint-hf and checkpoint-trtllm (those that exist), recorded in the manifest."""
    from orchestrator.stages import instrument
    from orchestrator.stages.verify import verify_checkpoint

    layout = WorkdirLayout(recipe.resolved_workdir)
    targets = [p for p in (layout.checkpoint_hf, layout.checkpoint_trtllm) if p.is_dir()]
    if not targets:
        raise UserError(f"{layout.root} has no checkpoint yet; run `orchestrator quantize` (and convert) first")

    def work() -> WorkdirVerification:
        clock = instrument.Stopwatch()
        reports = [verify_checkpoint(p, original=original) for p in targets]
        return WorkdirVerification(reports, clock.started_at, clock.elapsed, {"python": platform.python_version()})

    from orchestrator.pipeline.execute import run_standalone

    return run_standalone(recipe, "verify", work).reports
