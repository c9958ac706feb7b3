"""Convert stage: the TensorRT-LLM checkpoint (config.json + rank{R}.safetensors) from the quantized model.

Given the in-memory model from `quantize` it exports that; otherwise it loads the source
model and restores the saved quantizer state (no calibration). modelopt's
`export_tensorrt_llm_checkpoint` does the work with tp/pp from the recipe (for ep > 1,
reshard.py then re-cuts its tp-split experts into moe_tp x moe_ep); Mixtral's
decoder type is "llama" (modelopt's own model-type table decides). Needs transformers
4.57.x: under 5.x modelopt 0.47 fails on Mixtral's fused experts (DESIGN.md).
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_dir, atomic_write_json, tree_size
from orchestrator.errors import UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import StageRecord, now_iso
from orchestrator.stages import instrument

PROVENANCE_FILE = "orchestrator.json"


@dataclass
class ConvertResult:
    checkpoint_dir: Path
    rank_files: list[str]
    tp: int
    pp: int
    ep: int
    decoder_type: str
    reused_model: bool  # True: the in-memory model from quantize, no load
    started_at: str
    duration_s: float
    load_s: float
    export_s: float
    peak_cpu_mem_gb: float
    peak_gpu_mem_gb: float | None
    checkpoint_bytes: int
    versions: dict[str, str | None]
    model: Any = field(default=None, repr=False, compare=False)

    def stage_record(self) -> StageRecord:
        return StageRecord(
            status="done", started_at=self.started_at, ended_at=now_iso(), duration_s=self.duration_s,
            peak_cpu_mem_gb=self.peak_cpu_mem_gb, peak_gpu_mem_gb=self.peak_gpu_mem_gb,
            artifacts={"checkpoint_trtllm": {"path": str(self.checkpoint_dir), "bytes": self.checkpoint_bytes}},
            versions=self.versions, host=platform.node(), gpu=instrument.gpu_name(),
            metrics={"tp": self.tp, "pp": self.pp, "ep": self.ep, "rank_files": self.rank_files, "decoder_type": self.decoder_type,
                     "reused_model": self.reused_model, "load_s": self.load_s, "export_s": self.export_s,
                     "checkpoint_bytes": self.checkpoint_bytes},
        )


def _check_transformers() -> None:
    from importlib.metadata import version

    found = version("transformers")
    if int(found.split(".")[0]) >= 5:
        raise UserError(f"convert needs transformers 4.57.x; {found} is installed (modelopt 0.47's TRT-LLM export "
                        "fails on Mixtral's fused experts under 5.x)",
                        hint="pip install 'transformers>=4.57,<4.58' (the [quantize] extra pins it)")


def restore_model(recipe) -> Any:
    """The calibrated model from <workdir>/modelopt-state on top of the source model (no calibration)."""
    from orchestrator.manifest import load_manifest
    from orchestrator.stages.fetch import resolve_model
    from orchestrator.stages.quant_state import restore_quantized_model
    from orchestrator.stages.quantize import choose_device, load_model

    layout = WorkdirLayout(recipe.resolved_workdir)
    # checkpoint-hf and modelopt-state are renamed into place one after the other: only a quantize the
    # manifest records as done guarantees the pair belongs together.
    quantized = load_manifest(layout.manifest, recipe.name).stages.get("quantize")
    if quantized is not None and quantized.status != "done":
        raise UserError(f"the last quantize in {layout.root} did not finish ({quantized.status}); "
                        "run `orchestrator quantize` (or `orchestrator run`) again before converting")

    def load_source(source: dict[str, Any]):
        location = resolve_model(recipe)
        if source.get("revision") and location.revision and source["revision"] != location.revision:
            raise UserError(f"{layout.modelopt_state} was calibrated on {source['source']}@{source['revision']}, "
                            f"the recipe now resolves to @{location.revision}; run `orchestrator quantize` again")
        return load_model(location.path, recipe, choose_device(recipe))

    return restore_quantized_model(layout.modelopt_state, load_source)


def convert(recipe, *, model: Any = None) -> ConvertResult:
    """Export the TRT-LLM checkpoint; pass `model` (QuantizeResult.model) to skip loading it again."""
    from orchestrator.recipe.dump import recipe_dict
    from orchestrator.stages.quant_state import export_preserving_weights, sort_exclude_lists
    from orchestrator.stages.quantize import torch_dtype

    ckpt = recipe.checkpoint
    _check_transformers()
    layout = WorkdirLayout(recipe.resolved_workdir)
    clock = instrument.Stopwatch()
    instrument.reset_gpu_peak()
    reused = model is not None
    with instrument.library_output_to(layout.log("convert")):
        from modelopt.torch.export import export_tensorrt_llm_checkpoint
        from modelopt.torch.export.model_utils import get_model_type

        if model is None:
            model = restore_model(recipe)
        load_s = clock.elapsed
        decoder_type = get_model_type(model)
        if decoder_type is None:
            raise UserError(f"modelopt has no TRT-LLM decoder type for {type(model).__name__}; "
                            "this model can be served from checkpoint-hf with build.backend: pytorch")
        versions = instrument.versions()
        with atomic_dir(layout.checkpoint_trtllm) as tmp:
            # modelopt splits experts by tp only (moe_ep_size 1): for ep > 1 export with tp into a
            # scratch folder inside the partial checkpoint, then re-cut the experts (reshard.py).
            export_dir = tmp if ckpt.ep == 1 else tmp / "tp-export"
            with export_preserving_weights(model):
                export_tensorrt_llm_checkpoint(model, decoder_type, dtype=torch_dtype(recipe), export_dir=export_dir,
                                               inference_tensor_parallel=ckpt.tp, inference_pipeline_parallel=ckpt.pp)
            if ckpt.ep > 1:
                from orchestrator.stages.reshard import write_expert_parallel

                write_expert_parallel(export_dir, tmp, ckpt.ep)
                shutil.rmtree(export_dir)
            sort_exclude_lists(tmp)
            rank_files = sorted(p.name for p in tmp.glob("rank*.safetensors"))
            if len(rank_files) != ckpt.world_size:
                raise UserError(f"convert wrote {len(rank_files)} rank files for tp={ckpt.tp} x pp={ckpt.pp}; "
                                f"see {layout.log('convert')}")
            atomic_write_json(tmp / PROVENANCE_FILE, {
                "stage": "convert", "recipe": recipe_dict(recipe),
                "source": _quantize_source(layout), "decoder_type": decoder_type, "versions": versions})
    return ConvertResult(
        checkpoint_dir=layout.checkpoint_trtllm, rank_files=rank_files, tp=ckpt.tp, pp=ckpt.pp, ep=ckpt.ep,
        decoder_type=decoder_type, reused_model=reused, started_at=clock.started_at, duration_s=clock.elapsed,
        load_s=load_s, export_s=round(clock.elapsed - load_s, 3), peak_cpu_mem_gb=instrument.peak_cpu_rss_gb(),
        peak_gpu_mem_gb=instrument.peak_gpu_gb(), checkpoint_bytes=tree_size(layout.checkpoint_trtllm),
        versions=versions, model=model)


def _quantize_source(layout: WorkdirLayout) -> dict[str, Any]:
    from orchestrator.stages.quant_state import read_source

    try:
        return read_source(layout.modelopt_state)
    except UserError:
        return {}
