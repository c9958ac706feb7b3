"""The numbers a model card may show, read from manifest.json — and why one is missing when it is.

Every number on the card comes from here. A fact is looked up along its paths in FACT_PATHS
(first match wins); a missing one carries the reason (stage not run, failed, or did not record
it), which the card prints as "not measured (<reason>)". Nothing is estimated or filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.manifest import Manifest

# fact -> (stage, dotted path in that stage's record). "@field" reads the record itself (duration_s,
# host, gpu, versions), anything else its metrics. The pipeline records verify per checkpoint as
# "checkpoint_hf"/"checkpoint_trtllm" and `orchestrator verify` as "hf"/"trtllm": both are read.
FACT_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "original_bytes": (("verify", "hf.original_bytes"), ("verify", "checkpoint_hf.original_bytes"),
                       ("quantize", "source_bytes"), ("quantize", "source.bytes")),
    "original_bytes_source": (("verify", "hf.original_source"), ("verify", "checkpoint_hf.original_source")),
    "quantized_bytes": (("verify", "hf.checkpoint_bytes"), ("verify", "checkpoint_hf.checkpoint_bytes")),
    "quant_algo": (("verify", "hf.quant_algo"), ("verify", "checkpoint_hf.quant_algo")),
    "kv_cache_quant_algo": (("verify", "hf.kv_cache_quant_algo"), ("verify", "checkpoint_hf.kv_cache_quant_algo")),
    "group_size": (("verify", "hf.group_size"), ("verify", "checkpoint_hf.group_size")),
    "quantized_modules": (("verify", "hf.quantized_modules"), ("verify", "checkpoint_hf.quantized_modules")),
    "excluded_modules": (("verify", "hf.excluded_modules"), ("verify", "checkpoint_hf.excluded_modules")),
    "trtllm_bytes": (("verify", "trtllm.checkpoint_bytes"), ("verify", "checkpoint_trtllm.checkpoint_bytes")),
    "calibration_dataset": (("quantize", "calibration.dataset"),),
    "calibration_source": (("quantize", "calibration.source"),),
    "calibration_samples": (("quantize", "calibration.samples"),),
    "calibration_seq_len": (("quantize", "calibration.seq_len"),),
    "calibration_tokens": (("quantize", "calibration.tokens"),),
    "calibration_layerwise": (("quantize", "calibration.layerwise"),),
    "calibration_s": (("quantize", "calibration_s"),),
    "quantize_s": (("quantize", "@duration_s"),),
    "quantize_device": (("quantize", "device"),),
    "quantize_host": (("quantize", "@host"),),
    "quantize_gpu": (("quantize", "@gpu"),),
    "quantize_peak_cpu_gb": (("quantize", "@peak_cpu_mem_gb"),),
    "quantize_peak_gpu_gb": (("quantize", "@peak_gpu_mem_gb"),),
    "versions": (("quantize", "@versions"),),
    "ppl_dataset": (("eval", "text_source"), ("eval", "dataset")),
    "ppl_tokens": (("eval", "tokens"),),
    "ppl_seq_len": (("eval", "seq_len"),),
    "ppl_original": (("eval", "original_perplexity"),),
    "ppl_quantized": (("eval", "quantized_perplexity"),),
    "ppl_ratio": (("eval", "ratio"),),
    "ppl_max_ratio": (("eval", "max_ratio"),),
    "ppl_passed": (("eval", "passed"),),
    "eval_device": (("eval", "device"),),
    "eval_host": (("eval", "@host"),),
    "bench_tokens_per_s_c1": (("bench", "tokens_per_s_c1"),),
    "bench_latency_100_s": (("bench", "latency_100_tokens_s"),),
    "bench_latency_100_method": (("bench", "latency_100_method"),),
    "bench_ttft_ms_c1": (("bench", "ttft_ms_c1"),),
    "bench_headline_reason": (("bench", "headline_reason"),),
    "bench_engine": (("bench", "engine"),),
    "bench_hardware": (("bench", "hardware"),),
    "bench_complete": (("bench", "complete"),),
    "bench_incomplete_reason": (("bench", "incomplete_reason"),),
    "bench_input_len": (("bench", "input_len"),),
    "bench_output_len": (("bench", "output_len"),),
    "bench_levels": (("bench", "levels"),),
    "bench_ended_at": (("bench", "@ended_at"),),
}

# The command that records each stage, for the reason of a missing number.
STAGE_COMMANDS = {"quantize": "orchestrator quantize", "verify": "orchestrator verify", "eval": "orchestrator eval",
                  "bench": "orchestrator bench"}


@dataclass(frozen=True)
class Fact:
    value: Any
    reason: str | None = None  # why value is None

    @property
    def measured(self) -> bool:
        return self.value is not None


class ManifestFacts:
    """Look facts up in one manifest; a stage counts only when its record is "done"."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest

    def stage_reason(self, stage: str) -> str | None:
        """Why `stage`'s numbers are unusable, or None when it is done."""
        record = self.manifest.stages.get(stage)
        if record is None:
            return f"the {stage} stage has not run; run `{STAGE_COMMANDS.get(stage, 'orchestrator run')} RECIPE`"
        if record.status != "done":
            why = f": {record.reason}" if record.reason else ""
            return f"the {stage} stage is {record.status}{why}"
        return None

    def get(self, name: str) -> Fact:
        reasons = []
        for stage, path in FACT_PATHS[name]:
            reason = self.stage_reason(stage)
            if reason:
                reasons.append(reason)
                continue
            value = _lookup(self.manifest.stages[stage], path)
            if value is not None:
                return Fact(value)
            reasons.append(f"the {stage} stage did not record {path.lstrip('@')}")
        return Fact(None, reasons[0] if reasons else "no source for this number")

    def value(self, name: str) -> Any:
        return self.get(name).value


def _lookup(record, path: str) -> Any:
    if path.startswith("@"):
        return getattr(record, path[1:], None)
    node: Any = record.metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
