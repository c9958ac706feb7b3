"""The stage graph: for each stage its upstream, what its fingerprint covers, when it applies, what it makes.

Facts as data: adding a stage is adding a `StageDef`. The stage work itself lives in
`orchestrator.stages.*`; the small adapters here only translate between the pipeline's
context and those library functions.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.layout import WorkdirLayout
from orchestrator.pipeline.fingerprint import digest, file_sha256, package_versions, tree_digest


@dataclass
class StageContext:
    recipe: Any
    layout: WorkdirLayout
    progress: Any = None  # callable(description, completed, total) for nested progress, or None
    shared: dict[str, Any] = field(default_factory=dict)  # in-process hand-over (the quantized model)
    records: dict[str, Any] = field(default_factory=dict)  # manifest records of upstream stages


@dataclass
class StageOutcome:
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    record: Any = None  # a StageRecord the stage library measured itself (its numbers win)


def outcome_of(result: Any, artifacts: dict[str, Path] | None = None) -> StageOutcome:
    """A stage library's result as an outcome; results with stage_record() bring their own measurements."""
    if hasattr(result, "stage_record"):
        record = result.stage_record()
        return StageOutcome(dict(record.metrics), artifacts or {}, record)
    return StageOutcome(to_metrics(result), artifacts or {})


@dataclass(frozen=True)
class StageDef:
    name: str
    upstream: tuple[str, ...]
    config: Callable[[Any], Any]  # recipe parts whose change re-runs this stage
    inputs: Callable[[StageContext], Any]  # digests of input data (model files, calibration text)
    tools: Callable[[Any], dict[str, Any]]  # versions / image the stage runs with
    skip_reason: Callable[[Any], str | None]  # None: the stage applies
    outputs: Callable[[WorkdirLayout], list[Path]]
    execute: Callable[[StageContext], StageOutcome]


def to_metrics(result: Any) -> dict[str, Any]:
    """JSON-friendly metrics of a stage library's result object."""
    if result is None:
        return {}
    if hasattr(result, "metrics") and isinstance(result.metrics, dict):
        return dict(result.metrics)
    if dataclasses.is_dataclass(result):
        out = {}
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if isinstance(value, (str, int, float, bool, type(None), list, dict, Path)):
                out[f.name] = str(value) if isinstance(value, Path) else value
        return out
    if isinstance(result, dict):
        return result
    return {}


# ---- inputs --------------------------------------------------------------------------------------

def _model_dir(ctx: StageContext) -> Path | None:
    from orchestrator.recipe.checks import local_model_dir

    return local_model_dir(ctx.recipe)


def _model_inputs(ctx: StageContext) -> Any:
    fetched = ctx.records.get("fetch")
    if fetched is not None and fetched.metrics.get("files_digest"):
        return {"files": fetched.metrics["files_digest"]}
    local = _model_dir(ctx)
    return {"files": tree_digest(local)} if local is not None and local.is_dir() else {"source": ctx.recipe.model.source}


def _calibration_inputs(ctx: StageContext) -> Any:
    cal = ctx.recipe.quantize.calibration
    if cal.dataset == "builtin":
        local = _model_dir(ctx)
        path = local / "corpus" / "calibration.txt" if local else None
        return {"builtin": file_sha256(path) if path and path.is_file() else None}
    path = Path(cal.dataset).expanduser()
    if path.is_file():
        return {"file": file_sha256(path)}
    return {"named": cal.dataset}


def _eval_inputs(ctx: StageContext) -> Any:
    ppl = ctx.recipe.eval.perplexity
    if ppl.dataset == "builtin":
        local = _model_dir(ctx)
        path = local / "corpus" / "heldout.txt" if local else None
        return {"builtin": file_sha256(path) if path and path.is_file() else None, "model": _model_inputs(ctx)}
    path = Path(ppl.dataset).expanduser()
    return {"file": file_sha256(path) if path.is_file() else ppl.dataset, "model": _model_inputs(ctx)}


def _no_inputs(ctx: StageContext) -> Any:
    return None


def _card_inputs(ctx: StageContext) -> Any:
    bench = ctx.records.get("bench")  # a new bench result puts new numbers on the card
    return {"bench": bench.ended_at if bench is not None else None}


# ---- tools ---------------------------------------------------------------------------------------

QUANT_PACKAGES = ("nvidia-modelopt", "torch", "transformers", "safetensors")


def _quant_tools(recipe: Any) -> dict[str, Any]:
    return package_versions(*QUANT_PACKAGES)


def _no_tools(recipe: Any) -> dict[str, Any]:
    return {}


def _trtllm_tools(recipe: Any) -> dict[str, Any]:
    from orchestrator.images import image_for

    image = image_for(recipe.platform.value, recipe.build.backend.value, recipe.image)
    local = shutil.which("trtllm-build")
    return {"image": image.pinned_ref(recipe.platform_info.arch) if image else None, "local": local,
            "runtime": recipe.runtime.value}


# ---- skip reasons --------------------------------------------------------------------------------

def _always(recipe: Any) -> str | None:
    return None


def _fetch_skip(recipe: Any) -> str | None:
    if recipe.model.is_builtin:
        return "model is built in (shipped in the package)"
    if Path(recipe.model.source).expanduser().is_dir():
        return "model is a local directory"
    return None


def _build_skip(recipe: Any) -> str | None:
    from orchestrator.errors import MissingToolError
    from orchestrator.runtime.select import select_runner
    from orchestrator.stages.build import TOOL, not_applicable

    reason = not_applicable(recipe)
    if reason is not None:
        return reason
    try:
        select_runner(recipe, TOOL, echo=False)
    except MissingToolError as exc:
        return f"cannot run here: {exc.message}"
    return None


def _convert_skip(recipe: Any) -> str | None:
    if recipe.build.backend.value == "pytorch":
        return ("backend pytorch serves checkpoint-hf; only trtllm-build reads a TRT-LLM checkpoint "
                "(`orchestrator convert` still makes one on request)")
    return None


def _eval_skip(recipe: Any) -> str | None:
    return None if recipe.eval.perplexity.enabled else "eval.perplexity.enabled is false"


# ---- execution adapters --------------------------------------------------------------------------

def _fetch(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.fetch import fetch

    location = fetch(ctx.recipe)
    metrics = {"path": str(location.path), "kind": location.kind, "revision": location.revision,
               "bytes": location.bytes, "files_digest": tree_digest(location.path)}
    return StageOutcome(metrics, {"model": ctx.layout.source_model} if location.kind == "hub" else {})


def _quantize(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.quantize import quantize

    result = quantize(ctx.recipe, progress=ctx.progress)
    ctx.shared["quantized_model"] = result.model  # convert reuses it: the model is loaded once per run
    result.model = None
    return outcome_of(result)


def _convert(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.convert import convert

    result = convert(ctx.recipe, model=ctx.shared.pop("quantized_model", None))
    result.model = None
    return outcome_of(result, {"checkpoint_trtllm": ctx.layout.checkpoint_trtllm})


def _build(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.build import run_build

    return outcome_of(run_build(ctx.recipe), {"engine": ctx.layout.engine})


def _verify(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.verify import verify_checkpoint

    metrics: dict[str, Any] = {}
    for path in (ctx.layout.checkpoint_hf, ctx.layout.checkpoint_trtllm):
        if path.is_dir():
            report = verify_checkpoint(path)
            metrics[report.kind] = report.as_dict()
    return StageOutcome(metrics)


def _eval(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.evaluate import evaluate

    return outcome_of(evaluate(ctx.recipe, progress=ctx.progress), {"eval": ctx.layout.eval_json})


def _card(ctx: StageContext) -> StageOutcome:
    from orchestrator.stages.card import write_card

    path = write_card(ctx.recipe)
    return StageOutcome({}, {"card": Path(path) if path else ctx.layout.checkpoint_hf / "README.md"})


STAGES: dict[str, StageDef] = {
    s.name: s
    for s in [
        StageDef("fetch", (), lambda r: {"source": r.model.source, "revision": r.model.revision},
                 _no_inputs, _no_tools, _fetch_skip, lambda lay: [], _fetch),
        StageDef("quantize", ("fetch",), lambda r: {"model": r.model.model_dump(mode="json"),
                                                    "quantize": r.quantize.model_dump(mode="json")},
                 lambda ctx: {"model": _model_inputs(ctx), "calibration": _calibration_inputs(ctx)},
                 _quant_tools, _always, lambda lay: [lay.checkpoint_hf, lay.modelopt_state], _quantize),
        StageDef("convert", ("quantize",), lambda r: {"checkpoint": r.checkpoint.model_dump(mode="json")},
                 _no_inputs, _quant_tools, _convert_skip, lambda lay: [lay.checkpoint_trtllm], _convert),
        StageDef("build", ("convert",), lambda r: {"build": r.build.model_dump(mode="json"),
                                                   "platform": r.platform.value},
                 _no_inputs, _trtllm_tools, _build_skip, lambda lay: [lay.engine], _build),
        StageDef("verify", ("quantize", "convert"), lambda r: {}, _no_inputs, _no_tools, _always,
                 lambda lay: [], _verify),
        StageDef("eval", ("quantize",), lambda r: {"eval": r.eval.model_dump(mode="json")},
                 _eval_inputs, _quant_tools, _eval_skip, lambda lay: [lay.eval_json], _eval),
        StageDef("card", ("quantize", "convert", "verify", "eval"), lambda r: {"name": r.name},
                 _card_inputs, _no_tools, _always, lambda lay: [lay.checkpoint_hf / "README.md"], _card),
    ]
}
ENGINE_STAGES = tuple(STAGES)


def stage_fingerprint(stage: StageDef, ctx: StageContext, upstream: dict[str, str | None]) -> str:
    return digest({
        "stage": stage.name,
        "config": stage.config(ctx.recipe),
        "inputs": stage.inputs(ctx),
        "tools": stage.tools(ctx.recipe),
        "upstream": {u: upstream.get(u) for u in stage.upstream},
    })
