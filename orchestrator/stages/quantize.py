"""Quantize stage: calibrate the model with modelopt and export the unified HF checkpoint.

`quantize(recipe)` resolves the model (fetch), picks the device, draws the calibration
samples, runs `mtq.quantize` with the recipe's config, saves the quantizer state (so
convert never calibrates again) and exports <workdir>/checkpoint-hf with the tokenizer and
an orchestrator.json saying how it was made. Both directories appear atomically. When
this process calibrated, the result carries the in-memory quantized model, so
`convert(recipe, model=result.model)` in the same process does not load the model again;
after FSDP2 ranks (below) it carries none, and convert restores the saved state.

`quantize_and_export` is the core on a loaded model (calibrate, save the state, export);
bench/quantize.py times that same function on a synthetic model, and every FSDP2 rank runs
it. Where the weights live (`quantize.memory`, resolved by `choose_memory`): gpu, wholly on
the GPU (with `quantize.parallel: layers` and several GPUs: whole decoder layers on each in
turn); stream, in CPU memory with each decoder layer visiting the GPU once
(layer_stream.py); offload, accelerate's device_map (every batch re-sends the offloaded
weights); layerwise, on the GPU with modelopt's resumable layerwise calibration; fsdp2
(`quantize.gpus` > 1, `parallel: fsdp2`), split over the GPUs by torchrun ranks
(quantize_fsdp.py), which this process only starts.
"""

from __future__ import annotations

import contextlib
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
# `auto` keeps the model wholly on the GPU when its weights take at most this share of the free
# memory; the rest holds calibration activations and the export's packed copies. Larger: stream.
GPU_FIT_FRACTION = 0.8
# Shard size of a streamed export: the writer holds one shard (and safetensors one serialized
# copy of it) in CPU memory next to the whole BF16 model, so smaller than modelopt's 10GB default.
STREAM_SHARD_SIZE = "5GB"


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
    streamed: dict[str, Any] | None = None  # LayerStreamer.stats() when memory=stream
    sharded: dict[str, Any] | None = None  # quantize_fsdp's result (ranks, per-rank peaks) when memory=fsdp2
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
                     "calibration": self.calibration, "streamed": self.streamed, "sharded": self.sharded},
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


def choose_memory(requested: str, device: str, weights_bytes: int, free_bytes: int, *, sharded: bool = False) -> str:
    """Where the weights live during calibration: as asked, or (auto) gpu when they fit, else stream.

    Off the GPU there is nothing to choose: "cpu". `sharded` (quantize.gpus > 1 with
    parallel fsdp2): "fsdp2", the weights split over the GPUs (quantize_fsdp.py).
    """
    if device != "cuda":
        return "cpu"
    if sharded:
        return "fsdp2"
    if requested != "auto":
        return requested
    return "gpu" if weights_bytes <= GPU_FIT_FRACTION * free_bytes else "stream"


def placement_after_ranks(weights_bytes: int, free_per_gpu: list[int]) -> str:
    """Where one process (convert) puts a model FSDP2 ranks calibrated, the ranks being gone.

    gpu when GPU 0 holds it; layers (accelerate's sequential map over the host's GPUs, as
    `parallel: layers` calibrates) when they hold it together; else stream (CPU memory).
    """
    if weights_bytes <= GPU_FIT_FRACTION * free_per_gpu[0]:
        return "gpu"
    if weights_bytes <= GPU_FIT_FRACTION * sum(free_per_gpu):
        return "layers"
    return "stream"


def check_fits_ranks(weights_bytes: int, gpu_bytes: list[int]) -> None:
    """UserError, before any rank reads the checkpoint, when the weights cannot fit the GPUs' memory together."""
    gpus, total = len(gpu_bytes), sum(gpu_bytes)
    if weights_bytes > GPU_FIT_FRACTION * total:
        raise UserError(f"quantize.gpus={gpus}: the model's {weights_bytes / 2**30:.1f} GiB of weights exceed "
                        f"{GPU_FIT_FRACTION:.0%} of the {total / 2**30:.0f} GiB the {gpus} GPUs hold together, "
                        "so FSDP2 ranks cannot shard it",
                        hint="raise quantize.gpus, or use quantize.gpus: 1 with quantize.memory: stream "
                             "(weights in CPU memory, one layer at a time on the GPU)")


def calibration_gpus(recipe) -> int:
    """How many GPUs calibration spreads the model over; UserError when this host has fewer."""
    import torch

    wanted = recipe.quantize.gpus
    if wanted > torch.cuda.device_count():
        raise UserError(f"quantize.gpus={wanted}, but torch sees {torch.cuda.device_count()} GPU(s) here; "
                        "lower quantize.gpus or run on a larger host")
    return wanted


def resolve_memory(path: Path, recipe, device: str, *, ranks: bool = True) -> str:
    """`choose_memory` for the model at `path` (its safetensors size) and the free memory of the GPUs it may use.

    ranks=False: for a model this process loads itself, which after an fsdp2 quantize (the ranks
    gone) is `placement_after_ranks`. For the ranks themselves nothing here touches the GPUs
    (a CUDA context in this process would hold memory the ranks need all the while they run).
    """
    weights = sum(p.stat().st_size for p in Path(path).glob("*.safetensors"))
    if ranks and device == "cuda" and recipe.quantize.multi_gpu == "fsdp2":
        import torch

        # Total, not free, memory: reading free memory would create a CUDA context here.
        check_fits_ranks(weights, [torch.cuda.get_device_properties(i).total_memory
                                   for i in range(calibration_gpus(recipe))])
        return "fsdp2"
    free = [0]
    if device == "cuda":
        import torch

        free = [torch.cuda.mem_get_info(i)[0] for i in range(calibration_gpus(recipe))]
    if recipe.quantize.multi_gpu == "fsdp2" and device == "cuda" and not ranks:
        return placement_after_ranks(weights, free)
    total = sum(free) if recipe.quantize.multi_gpu == "layers" else free[0]
    return choose_memory(recipe.quantize.memory.value, device, weights, total,
                         sharded=recipe.quantize.multi_gpu == "fsdp2")


def load_model(path: Path, recipe, device: str, memory: str | None = None):
    """The source model in the recipe's dtype, placed for calibration by the memory strategy.

    stream loads into CPU memory (quantize_and_export moves the layers); offload lets
    accelerate keep on the CPU what does not fit and re-send it per batch (slow, see DESIGN);
    layers (and gpu with `parallel: layers`) places whole decoder layers over the host's GPUs.
    """
    from transformers import AutoModelForCausalLM

    memory = memory or resolve_memory(path, recipe, device, ranks=False)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(recipe), "trust_remote_code": recipe.model.trust_remote_code}
    if memory == "offload":
        import torch

        free, _ = torch.cuda.mem_get_info()
        kwargs.update(device_map="auto", max_memory={0: int(GPU_FIT_FRACTION * free), "cpu": "1000GiB"})
    elif memory == "layers" or (memory in ("gpu", "layerwise") and recipe.quantize.multi_gpu == "layers"):
        import torch

        # Naive model parallelism (modelopt's hf_ptq multi-GPU path): accelerate places whole decoder
        # layers on GPU 0, 1, ... in order and moves the hidden states between them; nothing goes to the
        # CPU. Each GPU but the last gets about an equal share of the weights, so the layers spread out
        # even when one GPU could hold them all (accelerate's "balanced" keeps small models on one GPU).
        gpus = calibration_gpus(recipe)
        weights = sum(p.stat().st_size for p in Path(path).glob("*.safetensors"))
        share = int(1.2 * weights / gpus)
        free = [int(GPU_FIT_FRACTION * torch.cuda.mem_get_info(i)[0]) for i in range(gpus)]
        budget = {i: (min(free[i], share) if i < gpus - 1 else free[i]) for i in range(gpus)}
        kwargs.update(device_map="sequential", max_memory=budget)
    elif memory in ("gpu", "layerwise"):
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


@dataclass
class CoreResult:
    """What `quantize_and_export` did: the calibrated model and its timings."""

    model: Any
    calibration_s: float
    export_s: float
    layerwise: bool
    streamed: dict[str, Any] | None  # LayerStreamer.stats() when memory=stream


def effective_config(config: dict[str, Any] | None, memory: str) -> dict[str, Any] | None:
    """The modelopt config as run: streaming needs layerwise calibration (each layer calibrated on all batches)."""
    from orchestrator.stages.layer_stream import with_layerwise

    return with_layerwise(config) if memory == "stream" else config


def quantize_and_export(model, config: dict[str, Any] | None, forward_loop, *, memory: str, device: str, dtype,
                        export_dir: Path, state_dir: Path | None = None,
                        source: dict[str, Any] | None = None, fsdp_rank: int | None = None) -> CoreResult:
    """Calibrate `model` with `config`, save the quantizer state (when `state_dir`), export the unified HF checkpoint.

    The stage's core, also what bench/quantize.py times and every FSDP2 rank runs
    (quantize_fsdp.py, `fsdp_rank` set: only rank 0 finishes the files, and the weights are not
    preserved for a later convert, since the rank exits after the export). `memory` is a resolved
    strategy (`choose_memory`); with "stream" the model comes in CPU memory and
    leaves it there, each decoder layer having been on `device` once for calibration and once
    for export.
    """
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint

    from orchestrator.stages.layer_stream import LayerStreamer, streamed_export
    from orchestrator.stages.quant_config import algorithm_method, is_layerwise
    from orchestrator.stages.quant_state import (
        AMAX_ONLY_ALGORITHMS,
        export_preserving_weights,
        save_state,
        sort_exclude_lists,
    )

    clock = instrument.Stopwatch()
    config = effective_config(config, memory)
    method = algorithm_method(config)
    streamer = (LayerStreamer(model, device, writeback=method not in AMAX_ONLY_ALGORITHMS)
                if memory == "stream" and config is not None else None)
    with streamer.attached() if streamer else contextlib.nullcontext():
        if config is not None:
            model = mtq.quantize(model, config, forward_loop)
        if streamer is not None:
            # All layers home before the export snapshots the model (export_preserving_weights),
            # so what it restores afterwards is CPU-resident too.
            streamer.release()
        _sync_gpu()
        calibration_s = clock.elapsed
        if state_dir is not None:
            save_state(model, state_dir, source or {}, method)
        # Kept intact for convert in this process; an FSDP2 rank lets modelopt pack them in place, so each
        # layer's BF16 shard is freed as its packed one appears (holding them cost a whole shard of GPU memory).
        with export_preserving_weights(model) if fsdp_rank is None else contextlib.nullcontext():
            if config is None:
                model.save_pretrained(export_dir)
            elif streamer is not None:
                with streamed_export(model, streamer):
                    export_hf_checkpoint(model, dtype=dtype, export_dir=export_dir, max_shard_size=STREAM_SHARD_SIZE)
            else:
                export_hf_checkpoint(model, dtype=dtype, export_dir=export_dir)
        if config is not None and not fsdp_rank:
            sort_exclude_lists(export_dir)
        _sync_gpu()
    return CoreResult(model=model, calibration_s=calibration_s, export_s=round(clock.elapsed - calibration_s, 3),
                      layerwise=is_layerwise(config), streamed=streamer.stats() if streamer else None)


def quantize(recipe, *, progress: ProgressFn | None = None) -> QuantizeResult:
    """Calibrate and export; see the module docstring. Raises UserError for anything the user can fix."""
    from orchestrator.recipe.dump import recipe_dict
    from orchestrator.stages.calibration import load_texts, select_samples

    layout = WorkdirLayout(recipe.resolved_workdir)
    cal = recipe.quantize.calibration
    clock = instrument.Stopwatch()
    location = resolve_model(recipe)
    device = choose_device(recipe)
    with instrument.library_output_to(layout.log("quantize")):
        # Imported here so their import-time chatter (deepspeed's accelerator notice) goes to the log.
        import modelopt.torch.export  # noqa: F401
        import modelopt.torch.quantization  # noqa: F401

        tokenizer = load_tokenizer(location.path, recipe)
        documents, described = load_texts(cal.dataset, location.path if location.kind == "builtin" else None)
        data = select_samples(documents, tokenizer, cal.samples, cal.seq_len, cal.seed, described)
        memory = resolve_memory(location.path, recipe, device)
        source = _source_info(location, recipe)
        versions = instrument.versions()
        # Nested: the state and the checkpoint appear together or not at all, so convert never pairs
        # a new state with an old checkpoint.
        with atomic_dir(layout.modelopt_state) as state_tmp, atomic_dir(layout.checkpoint_hf) as hf_tmp:
            calibrate = _calibrate_sharded if memory == "fsdp2" else _calibrate_here
            run = calibrate(recipe, location, data, device, memory, layout, state_tmp, hf_tmp, source, progress)
            calibration = {"dataset": cal.dataset, "source": data.source, "samples": data.samples,
                           "seq_len": data.seq_len, "batch_size": run.batch_size, "seed": cal.seed,
                           "sha256": data.sha256, "tokens": data.tokens, "windows_available": data.windows_available,
                           "forward_passes": run.forward_passes, "layerwise": run.core.layerwise, "memory": memory}
            tokenizer.save_pretrained(hf_tmp)
            atomic_write_json(hf_tmp / PROVENANCE_FILE, {
                "stage": "quantize", "recipe": recipe_dict(recipe), "source": source,
                "calibration": calibration, "device": device, "versions": versions})
        if calibration["layerwise"]:
            shutil.rmtree(layout.layerwise_checkpoints, ignore_errors=True)  # resume cache, spent
    load_s = run.load_s
    if run.ranks:
        peak_gpu = max((r["gpu_gib"] or 0.0) for r in run.ranks["peak_per_rank"]) if device == "cuda" else None
    else:
        peak_gpu = instrument.peak_gpu_gb()
    return QuantizeResult(
        checkpoint_dir=layout.checkpoint_hf, state_dir=layout.modelopt_state, device=device,
        format=recipe.quantize.format.value, started_at=clock.started_at, duration_s=clock.elapsed, load_s=load_s,
        calibration_s=run.core.calibration_s, export_s=run.core.export_s,
        peak_cpu_mem_gb=instrument.peak_cpu_rss_gb(), peak_gpu_mem_gb=peak_gpu, source=source,
        calibration=calibration, checkpoint_bytes=tree_size(layout.checkpoint_hf), versions=versions,
        streamed=run.core.streamed, sharded=run.ranks, model=run.core.model)


@dataclass
class _Calibrated:
    """One calibration as the stage records it, however it ran."""

    core: CoreResult
    load_s: float
    batch_size: int | None
    forward_passes: int
    ranks: dict[str, Any] | None = None  # quantize_fsdp's result.json when the ranks ran it


def _calibrate_here(recipe, location, data, device, memory, layout, state_dir, export_dir, source,
                    progress) -> _Calibrated:
    """In this process: load, calibrate (gpu, stream, offload, layerwise, layers or cpu), export."""
    from orchestrator.stages.calibration import ForwardLoop, cpu_batch_size, forward_kwargs
    from orchestrator.stages.quant_config import build_quant_config, is_layerwise

    instrument.reset_gpu_peak()
    clock = instrument.Stopwatch()
    cal = recipe.quantize.calibration
    model = load_model(location.path, recipe, device, memory)
    load_s = clock.elapsed
    fingerprint = {"source": source, "format": recipe.quantize.format.value, "kv_cache": recipe.quantize.kv_cache.value,
                   "exclude": list(recipe.quantize.exclude), "calibration_sha256": data.sha256}
    config = build_quant_config(recipe, _layerwise_dir(recipe, layout, fingerprint))
    batch_size = cal.batch_size if isinstance(cal.batch_size, int) else (
        cpu_batch_size(data.samples, data.seq_len, model.config) if device == "cpu" else None)
    layers = (getattr(model.config, "num_hidden_layers", None)
              if is_layerwise(effective_config(config, memory)) else None)
    loop = ForwardLoop(data, device, batch_size, progress, forward_kwargs(model), layers=layers)
    core = quantize_and_export(model, config, loop, memory=memory, device=device, dtype=torch_dtype(recipe),
                               export_dir=export_dir, state_dir=state_dir, source=source)
    return _Calibrated(core, load_s, loop.batch_size, loop.calls)


# With auto batch size the ranks cannot search for one: an out-of-memory error on one rank would
# leave the others waiting in a collective. Per rank and per forward; quantize.calibration.batch_size overrides.
FSDP_AUTO_BATCH = 8


def fsdp_batch_size(recipe, ranks: int, device: str) -> int:
    """The per-rank batch of a sharded calibration: the recipe's, else at most FSDP_AUTO_BATCH (a power of two)."""
    from orchestrator.stages.calibration import cpu_batch_size

    cal = recipe.quantize.calibration
    if isinstance(cal.batch_size, int):
        return cal.batch_size
    per_rank = -(-cal.samples // ranks)
    if device == "cpu":
        return cpu_batch_size(per_rank, cal.seq_len, None)
    return 1 << (min(per_rank, FSDP_AUTO_BATCH).bit_length() - 1)


def _calibrate_sharded(recipe, location, data, device, memory, layout, state_dir, export_dir, source,
                       progress) -> _Calibrated:
    """On quantize.gpus processes under torchrun, FSDP2 (quantize_fsdp.py); the model never enters this process."""
    from orchestrator.recipe.dump import recipe_dict
    from orchestrator.stages import quantize_fsdp

    ranks = calibration_gpus(recipe)
    quantize_fsdp.empty_model(str(location.path), torch_dtype(recipe), recipe.model.trust_remote_code)
    batch_size = fsdp_batch_size(recipe, ranks, device)
    job = quantize_fsdp.FsdpJob(recipe=recipe_dict(recipe), model_path=str(location.path), ranks=ranks, device=device,
                                batch_size=batch_size, export_dir=str(export_dir), state_dir=str(state_dir),
                                source=source)
    result = quantize_fsdp.run(job, data.input_ids, layout.root / ".quantize-fsdp", layout.log("quantize-ranks"),
                               progress)
    core = CoreResult(model=None, calibration_s=result["calibration_s"], export_s=result["export_s"], layerwise=False,
                      streamed=None)
    return _Calibrated(core, result["load_s"], batch_size, result["batches_per_rank"] * ranks, ranks=result)


def _sync_gpu() -> None:
    """Wait for queued GPU work, so a timing covers it (copies and kernels are asynchronous)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _source_info(location: ModelLocation, recipe) -> dict[str, Any]:
    return {"source": location.source, "kind": location.kind, "path": str(location.path),
            "revision": location.revision or recipe.model.revision, "dtype": recipe.model.dtype.value,
            "trust_remote_code": recipe.model.trust_remote_code, "bytes": location.bytes}
