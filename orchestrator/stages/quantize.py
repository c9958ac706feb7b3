"""Quantize stage: calibrate the model with modelopt and export the unified HF checkpoint.

`quantize(recipe)` resolves the model (fetch), picks the device, draws the calibration
samples, runs `mtq.quantize` with the recipe's config, saves the quantizer state (so
convert never calibrates again) and exports <workdir>/checkpoint-hf with the tokenizer and
an orchestrator.json saying how it was made. Both directories appear atomically. The
result carries the in-memory quantized model, so `convert(recipe, model=result.model)`
in the same process does not load the model again.
"""

from __future__ import annotations

import json
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
from orchestrator.stages.fetch import ModelLocation, resolve_model
from orchestrator.stages.progress import ProgressFn

PROVENANCE_FILE = "orchestrator.json"
LAYERWISE_FINGERPRINT = "orchestrator-fingerprint.json"


@dataclass
class QuantizeResult:
    """What quantize made and the numbers the manifest records."""

    checkpoint_dir: Path
    state_dir: Path
    device: str
    format: str
    started_at: str
    duration_s: float
    load_s: float
    calibration_s: float
    export_s: float
    peak_cpu_mem_gb: float
    peak_gpu_mem_gb: float | None
    source: dict[str, Any]
    calibration: dict[str, Any]
    checkpoint_bytes: int
    versions: dict[str, str | None]
    model: Any = field(default=None, repr=False, compare=False)

    def stage_record(self) -> StageRecord:
        return StageRecord(
            status="done", started_at=self.started_at, ended_at=now_iso(), duration_s=self.duration_s,
            peak_cpu_mem_gb=self.peak_cpu_mem_gb, peak_gpu_mem_gb=self.peak_gpu_mem_gb,
            artifacts={"checkpoint_hf": {"path": str(self.checkpoint_dir), "bytes": self.checkpoint_bytes},
                       "modelopt_state": {"path": str(self.state_dir), "bytes": tree_size(self.state_dir)}},
            versions=self.versions, host=platform.node(), gpu=instrument.gpu_name(),
            metrics={"device": self.device, "format": self.format, "load_s": self.load_s,
                     "calibration_s": self.calibration_s, "export_s": self.export_s,
                     "source_bytes": self.source.get("bytes"), "checkpoint_bytes": self.checkpoint_bytes,
                     "calibration": self.calibration},
        )


def choose_device(recipe) -> str:
    """cuda when asked or (auto) when a GPU is present, else cpu."""
    import torch

    wanted = recipe.quantize.device.value
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UserError("quantize.device=cuda but torch sees no CUDA GPU here; use quantize.device=auto or cpu")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def torch_dtype(recipe):
    import torch

    return getattr(torch, recipe.model.dtype.value)


def load_model(path: Path, recipe, device: str):
    """The source model in the recipe's dtype, placed for calibration (memory strategy on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(recipe), "trust_remote_code": recipe.model.trust_remote_code}
    if device == "cuda":
        memory = recipe.quantize.memory.value
        free, _ = torch.cuda.mem_get_info()
        weights = sum(p.stat().st_size for p in Path(path).glob("*.safetensors"))
        if memory == "offload" or (memory == "auto" and weights > 0.8 * free):
            # accelerate keeps what does not fit on the CPU and streams it per batch (slow, see DESIGN).
            kwargs.update(device_map="auto", max_memory={0: int(0.8 * free), "cpu": "1000GiB"})
        else:
            kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the model from {path}: {exc}".splitlines()[0]) from None
    return model.eval()


def load_tokenizer(path: Path, recipe):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=recipe.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"no usable tokenizer in {path} ({type(exc).__name__}); calibration needs one") from None


def _layerwise_dir(recipe, layout: WorkdirLayout, fingerprint: dict[str, Any]) -> Path | None:
    """modelopt's resume directory, emptied when it belongs to another model, format or data."""
    if not (recipe.quantize.layerwise or recipe.quantize.memory.value == "layerwise"):
        return None
    directory = layout.layerwise_checkpoints
    marker = directory / LAYERWISE_FINGERPRINT
    if directory.exists():
        try:
            same = json.loads(marker.read_text()) == fingerprint
        except (FileNotFoundError, json.JSONDecodeError):
            same = False
        if not same:
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, fingerprint)
    return directory


def quantize(recipe, *, progress: ProgressFn | None = None) -> QuantizeResult:
    """Calibrate and export; see the module docstring. Raises UserError for anything the user can fix."""
    from orchestrator.recipe.dump import recipe_dict
    from orchestrator.stages.calibration import (
        ForwardLoop,
        cpu_batch_size,
        forward_kwargs,
        load_texts,
        select_samples,
    )
    from orchestrator.stages.quant_config import algorithm_method, build_quant_config, is_layerwise
    from orchestrator.stages.quant_state import export_preserving_weights, save_state, sort_exclude_lists

    layout = WorkdirLayout(recipe.resolved_workdir)
    cal = recipe.quantize.calibration
    clock = instrument.Stopwatch()
    instrument.reset_gpu_peak()
    location = resolve_model(recipe)
    device = choose_device(recipe)
    with instrument.library_output_to(layout.log("quantize")):
        # Imported here so their import-time chatter (deepspeed's accelerator notice) goes to the log.
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint

        tokenizer = load_tokenizer(location.path, recipe)
        documents, described = load_texts(cal.dataset, location.path if location.kind == "builtin" else None)
        data = select_samples(documents, tokenizer, cal.samples, cal.seq_len, cal.seed, described)
        model = load_model(location.path, recipe, device)
        load_s = clock.elapsed

        source = _source_info(location, recipe)
        fingerprint = {"source": source, "format": recipe.quantize.format.value, "kv_cache": recipe.quantize.kv_cache.value,
                       "exclude": list(recipe.quantize.exclude), "calibration_sha256": data.sha256}
        config = build_quant_config(recipe, _layerwise_dir(recipe, layout, fingerprint))
        batch_size = cal.batch_size if isinstance(cal.batch_size, int) else (
            cpu_batch_size(data.samples, data.seq_len, model.config) if device == "cpu" else None)
        layers = getattr(model.config, "num_hidden_layers", None) if is_layerwise(config) else None
        loop = ForwardLoop(data, device, batch_size, progress, forward_kwargs(model), layers=layers)
        if config is not None:
            model = mtq.quantize(model, config, loop)
        calibration_s = round(clock.elapsed - load_s, 3)

        calibration = {"dataset": cal.dataset, "source": data.source, "samples": data.samples,
                       "seq_len": data.seq_len, "batch_size": loop.batch_size, "seed": cal.seed,
                       "sha256": data.sha256, "tokens": data.tokens, "windows_available": data.windows_available,
                       "forward_passes": loop.calls, "layerwise": is_layerwise(config)}
        versions = instrument.versions()
        # Nested: the state and the checkpoint appear together or not at all, so convert never pairs
        # a new state with an old checkpoint.
        with atomic_dir(layout.modelopt_state) as state_tmp, atomic_dir(layout.checkpoint_hf) as hf_tmp:
            save_state(model, state_tmp, source, algorithm_method(config))
            with export_preserving_weights(model):
                if config is not None:
                    export_hf_checkpoint(model, dtype=torch_dtype(recipe), export_dir=hf_tmp)
                    sort_exclude_lists(hf_tmp)
                else:
                    model.save_pretrained(hf_tmp)
            tokenizer.save_pretrained(hf_tmp)
            atomic_write_json(hf_tmp / PROVENANCE_FILE, {
                "stage": "quantize", "recipe": recipe_dict(recipe), "source": source,
                "calibration": calibration, "device": device, "versions": versions})
        if calibration["layerwise"]:
            shutil.rmtree(layout.layerwise_checkpoints, ignore_errors=True)  # resume cache, spent
    return QuantizeResult(
        checkpoint_dir=layout.checkpoint_hf, state_dir=layout.modelopt_state, device=device,
        format=recipe.quantize.format.value, started_at=clock.started_at, duration_s=clock.elapsed, load_s=load_s,
        calibration_s=calibration_s, export_s=round(clock.elapsed - load_s - calibration_s, 3),
        peak_cpu_mem_gb=instrument.peak_cpu_rss_gb(), peak_gpu_mem_gb=instrument.peak_gpu_gb(), source=source,
        calibration=calibration, checkpoint_bytes=tree_size(layout.checkpoint_hf), versions=versions, model=model)


def _source_info(location: ModelLocation, recipe) -> dict[str, Any]:
    return {"source": location.source, "kind": location.kind, "path": str(location.path),
            "revision": location.revision or recipe.model.revision, "dtype": recipe.model.dtype.value,
            "trust_remote_code": recipe.model.trust_remote_code, "bytes": location.bytes}
