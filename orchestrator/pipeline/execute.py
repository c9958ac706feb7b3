"""Run the stage graph: skip what is up to date, run the rest in order, record everything in the manifest."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.atomic import tree_size
from orchestrator.errors import GateFailed, OrchestratorError, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import Manifest, StageRecord, load_manifest, now_iso, save_manifest
from orchestrator.metering import measure
from orchestrator.pipeline.graph import (
    ENGINE_STAGES,
    STAGES,
    StageContext,
    StageDef,
    StageOutcome,
    outcome_of,
    stage_fingerprint,
)
from orchestrator.pipeline.lock import workdir_lock
from orchestrator.recipe.root import STAGE_ORDER


@dataclass
class RunOptions:
    force: set[str] = field(default_factory=set)
    from_stage: str | None = None
    until: str | None = None


class Events:
    """What the pipeline tells its display; the CLI supplies a rich implementation, tests a recorder."""

    def stage_start(self, name: str) -> None: ...
    def stage_end(self, name: str, status: str, detail: str = "") -> None: ...
    def progress(self, description: str, completed: float, total: float | None) -> None: ...
    def warn(self, message: str) -> None: ...


CARD_FILE = "README.md"  # the card stage writes the model card into checkpoint-hf, after quantize recorded it


def artifact_size(path: Path) -> int:
    """Bytes of an artifact as its stage made it: a later stage's model card does not count."""
    size = tree_size(path)
    card = path / CARD_FILE
    return size - card.stat().st_size if path.is_dir() and card.is_file() else size


def _intact(stage: StageDef, record: StageRecord, layout: WorkdirLayout) -> bool:
    """Outputs exist and still have the sizes recorded when they were made."""
    for path in stage.outputs(layout):
        if not path.exists():
            return False
    for artifact in record.artifacts.values():
        path = Path(artifact["path"])
        if not path.exists() or artifact_size(path) != artifact.get("bytes"):
            return False
    return True


def _selection(options: RunOptions, recipe) -> list[str]:
    names = list(ENGINE_STAGES)
    # serve and bench follow the engine stages (run.serve / run.bench); --until them means "all of the engine".
    for label, stage, allowed in (("--from", options.from_stage, names),
                                  ("--until", options.until, names + list(STAGE_ORDER[len(names):]))):
        if stage is not None and stage not in allowed:
            raise UserError(f"{label} {stage}: not a pipeline stage; stages: {', '.join(allowed)}")
    for stage in options.force:
        if stage not in names:
            raise UserError(f"--force {stage}: not a pipeline stage; stages: {', '.join(names)}")
    start = names.index(options.from_stage) if options.from_stage else 0
    until = options.until or (recipe.run.until.value if recipe.run.until else None)
    end = names.index(until) + 1 if until in names else len(names)
    return names[start:end]


def _host_info() -> tuple[str, str | None]:
    import platform
    import socket

    from orchestrator.doctor import probe_gpus

    gpus, _ = probe_gpus()
    gpu = f"{len(gpus)}x {gpus[0].name} (SM{gpus[0].sm})" if gpus else None
    return f"{socket.gethostname()} ({platform.machine()}, {platform.system()})", gpu


def run_pipeline(recipe, options: RunOptions | None = None, events: Events | None = None) -> Manifest:
    """Run the engine stages of `recipe` under the workdir lock; return the final manifest."""
    options = options or RunOptions()
    events = events or Events()
    layout = WorkdirLayout(recipe.resolved_workdir)
    selected = _selection(options, recipe)
    forced = set(options.force)
    if options.from_stage:
        forced |= set(selected)
    with workdir_lock(layout.root, warn=events.warn):
        manifest = load_manifest(layout.manifest, recipe.name)
        manifest.recipe = recipe.name
        manifest.recipe_path = str(recipe.source_path) if recipe.source_path else None
        host, gpu = _host_info()
        ctx = StageContext(recipe, layout, progress=events.progress, records=manifest.stages)
        fingerprints: dict[str, str | None] = {}
        for name in ENGINE_STAGES:
            stage = STAGES[name]
            reason = stage.skip_reason(recipe)
            if reason is not None:
                fingerprints[name] = None
                if name in selected:
                    manifest.stages[name] = StageRecord(status="skipped", reason=reason, ended_at=now_iso())
                    save_manifest(layout.manifest, manifest)
                    events.stage_end(name, "skipped", reason)
                continue
            fingerprint = stage_fingerprint(stage, ctx, fingerprints)
            fingerprints[name] = fingerprint
            record = manifest.stages.get(name)
            if name not in selected:
                if names_before(name, selected) and not (record and record.status == "done"):
                    raise UserError(f"--from {options.from_stage}: upstream stage {name} has no finished output",
                                    hint="run without --from first")
                continue
            if (name not in forced and record is not None and record.status == "done"
                    and record.fingerprint == fingerprint and _intact(stage, record, layout)):
                events.stage_end(name, "up to date", "")
                continue
            _run_stage(stage, ctx, manifest, fingerprint, host, gpu, events)
        if recipe.run.serve or recipe.run.bench:
            _serve_and_bench(recipe, ctx, manifest, fingerprints, host, gpu, events)
        return load_manifest(layout.manifest, recipe.name)


def _serve_and_bench(recipe, ctx: StageContext, manifest: Manifest, fingerprints: dict[str, str | None], host: str,
                     gpu: str | None, events: Events) -> None:
    """`run.serve` / `run.bench`: start the server detached (unless it already runs), bench it, refresh the card."""
    from orchestrator.runtime.serve_process import running_server
    from orchestrator.stages.serve import run_serve, runner_for

    events.stage_start("serve")
    if running_server(ctx.layout.serve_state, runner_for(recipe)) is None:
        run_serve(recipe, detach=True)
        events.stage_end("serve", "done", "detached; `orchestrator stop` ends it")
    else:
        events.stage_end("serve", "up to date", "already running")
    if not recipe.run.bench:
        return
    from orchestrator.stages.bench.run import raise_if_failed, run_bench
    from orchestrator.stages.bench.target import resolve_target

    events.stage_start("bench")
    data = run_bench(recipe.bench, resolve_target(recipe))
    raise_if_failed(data)
    events.stage_end("bench", "done", "")
    card = STAGES["card"]  # the card now has bench numbers to show
    manifest = load_manifest(ctx.layout.manifest, recipe.name)
    _run_stage(card, ctx, manifest, stage_fingerprint(card, ctx, fingerprints), host, gpu, events)


def run_standalone(recipe, name: str, work: Callable[[], Any]) -> Any:
    """One stage as its own command (`orchestrator quantize|convert|build|verify|eval`): the same workdir lock,
    fingerprint and manifest record as inside `run`, so a later `run` counts it as up to date."""
    import dataclasses

    layout = WorkdirLayout(recipe.resolved_workdir)
    results: list[Any] = []

    def execute_stage(ctx: StageContext) -> StageOutcome:
        results.append(work())
        made = {path.name: path for path in STAGES[name].outputs(layout) if path.exists()}
        return outcome_of(results[0], made)

    stage = dataclasses.replace(STAGES[name], execute=execute_stage)
    with workdir_lock(layout.root, warn=_stderr):
        manifest = load_manifest(layout.manifest, recipe.name)
        manifest.recipe = recipe.name
        ctx = StageContext(recipe, layout, records=manifest.stages)
        upstream = {stage_name: record.fingerprint for stage_name, record in manifest.stages.items()}
        host, gpu = _host_info()
        _run_stage(stage, ctx, manifest, stage_fingerprint(stage, ctx, upstream), host, gpu, Events())
    return results[0]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def names_before(name: str, selected: list[str]) -> bool:
    return bool(selected) and ENGINE_STAGES.index(name) < ENGINE_STAGES.index(selected[0])


def _run_stage(stage: StageDef, ctx: StageContext, manifest: Manifest, fingerprint: str, host: str,
               gpu: str | None, events: Events) -> None:
    layout = ctx.layout
    record = StageRecord(status="running", fingerprint=fingerprint, started_at=now_iso(), host=host, gpu=gpu,
                         versions={k: v for k, v in stage.tools(ctx.recipe).items() if isinstance(v, str) or v is None})
    manifest.stages[stage.name] = record
    save_manifest(layout.manifest, manifest)
    events.stage_start(stage.name)
    failure: BaseException | None = None
    with measure() as usage:
        try:
            outcome = stage.execute(ctx)
        except BaseException as exc:  # recorded, then re-raised for the CLI's one error mapper
            failure = exc
    record.ended_at = now_iso()
    record.duration_s = usage.duration_s
    record.peak_cpu_mem_gb = usage.peak_cpu_mem_gb
    record.peak_gpu_mem_gb = usage.peak_gpu_mem_gb
    if failure is not None:
        record.status = "failed"
        record.reason = failure.message if isinstance(failure, OrchestratorError) else f"{type(failure).__name__}: {failure}"
        if isinstance(failure, GateFailed) and getattr(failure, "metrics", None):
            record.metrics = dict(failure.metrics)
        save_manifest(layout.manifest, manifest)
        events.stage_end(stage.name, "failed", record.reason)
        raise failure
    own = outcome.record
    if own is not None:  # the stage measured itself more precisely (load vs calibration, its own peaks)
        record.versions = own.versions or record.versions
        record.peak_cpu_mem_gb = own.peak_cpu_mem_gb or record.peak_cpu_mem_gb
        record.peak_gpu_mem_gb = own.peak_gpu_mem_gb or record.peak_gpu_mem_gb
        record.gpu = own.gpu or record.gpu
    record.status = "done"
    record.metrics = outcome.metrics
    artifacts = {k: Path(v["path"]) for k, v in (own.artifacts if own is not None else {}).items()}
    artifacts.update(outcome.artifacts)
    record.artifacts = {k: {"path": str(p), "bytes": artifact_size(p) if p.exists() else 0}
                        for k, p in artifacts.items()}
    save_manifest(layout.manifest, manifest)
    events.stage_end(stage.name, "done", f"{usage.duration_s:.1f}s")


