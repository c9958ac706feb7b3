"""Eval stage: perplexity of the original model vs the exported quantized checkpoint, and the accuracy gate.

The original is the source model through transformers in the recipe's dtype; the
quantized model is built from the exported files in checkpoint-hf, not from anything
left in memory by quantize (`orchestrator.emulate`), so the gate judges exactly what
would be deployed, on a CPU or any GPU. Both run on the same tokens with the same
windows. quantized/original above `eval.perplexity.max_ratio` raises GateFailed (exit 3)
carrying the numbers; eval.json is written either way.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json
from orchestrator.errors import GateFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.stages.progress import ProgressFn

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class EvalResult:
    """Both perplexities, the gate's verdict and how they were measured."""

    dataset: str  # eval.perplexity.dataset as given
    text_source: str
    original_perplexity: float
    quantized_perplexity: float
    ratio: float
    max_ratio: float
    passed: bool
    tokens: int  # scored tokens (each once)
    text_tokens: int  # tokens of the text after max_tokens
    windows: int
    seq_len: int
    stride: int
    max_tokens: int | None
    device: str
    dtype: str
    checkpoint: str
    quant_algo: str | None
    kv_cache_quant_algo: str | None
    kv_cache_emulated: bool
    emulated_layers: dict[str, int] = field(default_factory=dict)
    durations_s: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """JSON-friendly: non-finite perplexities become the strings "inf" / "nan"."""
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def gate(original: float, quantized: float, max_ratio: float) -> tuple[float, bool]:
    """(quantized / original, whether it passes). A NaN or infinite ratio never passes."""
    ratio = quantized / original if original > 0 else math.inf
    return ratio, math.isfinite(ratio) and ratio <= max_ratio


def resolve_device(device: str) -> str:
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cuda' without one is a UserError."""
    import torch

    if device not in DEVICES:
        raise UserError(f"--device {device}: use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA GPU here", hint="use --device cpu (or auto)")
    return device


def source_model_dir(recipe) -> Path:
    """The original model's local directory (builtin, local path, or the hub cache; never downloads)."""
    from orchestrator.stages.fetch import resolve_model

    return resolve_model(recipe, download=False).path


def tokenize(text: str, model_dir: Path, max_tokens: int | None, trust_remote_code: bool):
    """The text as one 1-D token id tensor (the tokenizer's usual specials at the start), cut to max_tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    tokenizer.model_max_length = 1 << 40  # one long stream on purpose; windows come later
    ids = tokenizer(text, return_tensors="pt", return_attention_mask=False)["input_ids"][0]
    return ids[:max_tokens] if max_tokens else ids


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def evaluate(recipe, *, device: str = "auto", progress: ProgressFn | None = None) -> EvalResult:
    """Measure both perplexities, write eval.json, and apply the gate (GateFailed with `.metrics`)."""
    import torch

    try:
        return _evaluate(recipe, resolve_device(device), progress)
    except torch.cuda.OutOfMemoryError:
        raise UserError("eval: the model does not fit in GPU memory (eval holds one whole model in the "
                        "recipe's dtype at a time)", hint="use `orchestrator eval RECIPE --device cpu`, "
                        "a larger GPU, or fewer tokens per window (eval.perplexity.seq_len)") from None


def _evaluate(recipe, device: str, progress: ProgressFn | None) -> EvalResult:
    import torch
    from transformers import AutoModelForCausalLM

    from orchestrator.emulate.checkpoint import load_emulated_model
    from orchestrator.stages.eval_text import load_eval_text
    from orchestrator.stages.perplexity import perplexity

    settings = recipe.eval.perplexity
    layout = WorkdirLayout(recipe.resolved_workdir)
    checkpoint = layout.checkpoint_hf
    if not (checkpoint / "config.json").is_file():
        raise UserError(f"eval: no exported checkpoint in {checkpoint}",
                        hint=f"run `orchestrator quantize {recipe.source_path or 'RECIPE'}` first")
    dtype = getattr(torch, recipe.model.dtype.value)
    durations: dict[str, float] = {}
    started = time.perf_counter()

    model_dir = source_model_dir(recipe)
    text = load_eval_text(settings.dataset, model_dir)
    ids = tokenize(text.text, model_dir, settings.max_tokens, recipe.model.trust_remote_code)
    if ids.numel() < 2:
        raise UserError(f"eval.perplexity.dataset={settings.dataset}: {ids.numel()} token(s); need at least 2")
    durations["text_s"] = round(time.perf_counter() - started, 3)

    mark = time.perf_counter()
    original = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                                    trust_remote_code=recipe.model.trust_remote_code)
    original = original.to(device).eval()
    durations["original_load_s"] = round(time.perf_counter() - mark, 3)
    base = perplexity(original, ids, settings.seq_len, settings.stride, progress=progress, label="eval original")
    durations["original_eval_s"] = base.seconds
    del original
    _free(device)

    mark = time.perf_counter()
    emulated, report = load_emulated_model(checkpoint, dtype, device)
    durations["quantized_load_s"] = round(time.perf_counter() - mark, 3)
    quant = perplexity(emulated, ids, settings.seq_len, settings.stride, progress=progress, label="eval quantized")
    durations["quantized_eval_s"] = quant.seconds
    del emulated
    _free(device)
    durations["total_s"] = round(time.perf_counter() - started, 3)

    ratio, passed = gate(base.perplexity, quant.perplexity, settings.max_ratio)
    result = EvalResult(
        dataset=settings.dataset, text_source=text.source,
        original_perplexity=base.perplexity, quantized_perplexity=quant.perplexity, ratio=ratio,
        max_ratio=settings.max_ratio, passed=passed,
        tokens=base.tokens, text_tokens=int(ids.numel()), windows=base.windows, seq_len=settings.seq_len,
        stride=settings.stride, max_tokens=settings.max_tokens, device=device, dtype=report.dtype,
        checkpoint=str(checkpoint), quant_algo=report.quant_algo, kv_cache_quant_algo=report.kv_cache_quant_algo,
        kv_cache_emulated=report.kv_cache_emulated, emulated_layers=report.layers, durations_s=durations,
    )
    _write_eval_json(recipe, layout.eval_json, result)
    if not result.passed:
        failure = GateFailed(
            f"eval: quantized perplexity {result.quantized_perplexity:.4f} vs original "
            f"{result.original_perplexity:.4f}: ratio {ratio:.4f} exceeds eval.perplexity.max_ratio "
            f"{settings.max_ratio}",
            hint=f"details in {layout.eval_json}; try a gentler format (e.g. quantize.format=fp8), more "
            "calibration samples, or exclude sensitive layers",
        )
        failure.metrics = result.metrics  # type: ignore[attr-defined] - the pipeline records it
        raise failure
    return result


def _write_eval_json(recipe, path: Path, result: EvalResult) -> None:
    from orchestrator.pipeline.fingerprint import package_versions

    atomic_write_json(path, {
        "recipe": recipe.name,
        "eval": recipe.eval.perplexity.model_dump(mode="json"),
        "versions": package_versions("torch", "transformers", "safetensors"),
        "result": result.metrics,
    })


def evaluate_and_record(recipe, *, device: str = "auto", progress: ProgressFn | None = None) -> EvalResult:
    """`orchestrator eval`: `evaluate` under the workdir lock, recorded in manifest.json like a pipeline stage."""
    from orchestrator.pipeline.execute import run_standalone

    return run_standalone(recipe, "eval", lambda: evaluate(recipe, device=device, progress=progress))
