"""The card's Markdown sections, after the seed card: format, sizes, method, hardware, eval, bench, usage.

Each function takes the recipe and the ManifestFacts and returns Markdown. A number is shown only
when the manifest has it; otherwise the cell says "not measured (<reason>)".
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from orchestrator.stages.card.facts import Fact, ManifestFacts

NVFP4_TEXT = (
    "NVFP4 stores each weight as a 4-bit FP4 (E2M1) value in blocks of 16, each block scaled by an FP8 "
    "(E4M3) scale, times one FP32 scale per tensor. Per quantized linear layer the checkpoint holds `weight` "
    "(uint8, two values per byte), `weight_scale` (float8_e4m3fn, one per block), `weight_scale_2` (float32) "
    "and `input_scale` (float32)."
)


def shown(fact: Fact, fmt: str = "{}", suffix: str = "") -> str:
    """The value formatted, or 'not measured (reason)'."""
    if not fact.measured:
        return f"not measured ({fact.reason})"
    return fmt.format(fact.value) + suffix


def size_text(fact: Fact) -> str:
    from orchestrator.stages.verify.report import human_bytes

    if not fact.measured:
        return shown(fact)
    return f"{human_bytes(int(fact.value))} ({int(fact.value):,} bytes)"


def title(recipe) -> str:
    fmt = recipe.format_info
    return (f"# {recipe.name}\n\n{recipe.model.source} quantized to **{fmt.name.upper()}** with NVIDIA "
            f"TensorRT Model Optimizer (modelopt), for TensorRT-LLM.\n")


def format_section(recipe) -> str:
    fmt = recipe.format_info
    lines = ["## Format", ""]
    if fmt.is_nvfp4:
        lines.append(NVFP4_TEXT)
        lines.append("")
    lines.append(f"- Format: `{fmt.name}` (modelopt `{fmt.modelopt_config}`, TensorRT-LLM quant_algo "
                 f"`{fmt.quant_algo}`); KV cache: `{recipe.quantize.kv_cache.value}`.")
    lines.append(f"- Runs on: {fmt.why}.")
    return "\n".join(lines) + "\n"


def size_section(facts: ManifestFacts) -> str:
    if facts.stage_reason("verify") and facts.stage_reason("quantize"):
        return f"## Model size\n\nNot measured ({facts.stage_reason('verify')}).\n"
    original, quantized = facts.get("original_bytes"), facts.get("quantized_bytes")
    if original.measured and quantized.measured and quantized.value:
        ratio = f"{original.value / quantized.value:.2f}x"
        reduction = f"{100.0 * (1 - quantized.value / original.value):.1f}%"
    else:
        missing = original if not original.measured else quantized
        ratio = reduction = f"not measured ({missing.reason or 'quantized size is 0'})"
    source = facts.get("original_bytes_source")
    lines = [
        "## Model size", "",
        "| | Size |", "|---|---|",
        f"| Original | {size_text(original)} |",
        f"| Quantized (checkpoint weights) | {size_text(quantized)} |",
        f"| Compression ratio | {ratio} |",
        f"| Size reduction | {reduction} |",
        "",
        "Sizes are tensor bytes of the safetensors files, as recorded by `orchestrator verify`"
        + (f"; the original size comes from {source.value}." if source.measured else "."),
    ]
    return "\n".join(lines) + "\n"


def method_section(recipe, facts: ManifestFacts) -> str:
    q = recipe.quantize
    dataset, source = facts.get("calibration_dataset"), facts.get("calibration_source")
    if source.measured and dataset.measured and str(source.value).startswith(str(dataset.value)):
        dataset_text = f"{source.value}"  # e.g. "builtin (<path>)": the source already names the dataset
    else:
        dataset_text = shown(dataset, "`{}`") + (f" ({source.value})" if source.measured
                                                 and source.value != dataset.value else "")
    lines = [
        "## Quantization", "",
        f"- Method: modelopt `mtq.quantize` with `{recipe.format_info.modelopt_config}`, calibrated with "
        f"`max` statistics{' one decoder layer at a time (layerwise)' if facts.value('calibration_layerwise') else ''}"
        ", exported as a unified Hugging Face checkpoint (`hf_quant_config.json`).",
        f"- Calibration dataset: {dataset_text}",
        f"- Calibration samples: {shown(facts.get('calibration_samples'))} x "
        f"{shown(facts.get('calibration_seq_len'))} tokens",
        f"- Calibration time: {shown(facts.get('calibration_s'), '{:.1f}', ' s')}; "
        f"whole quantize stage (load, calibrate, export): {shown(facts.get('quantize_s'), '{:.1f}', ' s')}",
        f"- Excluded from quantization (recipe patterns): {', '.join(f'`{p}`' for p in q.exclude) or 'none'}; "
        f"modules left unquantized in the checkpoint: {shown(facts.get('excluded_modules'))}, quantized: "
        f"{shown(facts.get('quantized_modules'))}",
    ]
    return "\n".join(lines) + "\n"


def hardware_section(facts: ManifestFacts) -> str:
    device, host, gpu = facts.get("quantize_device"), facts.get("quantize_host"), facts.get("quantize_gpu")
    versions = facts.get("versions")
    where = shown(device) + (f" on host `{host.value}`" if host.measured else "") + (
        f", GPU {gpu.value}" if gpu.measured else "")
    lines = [
        "## Hardware and software", "",
        f"- Quantized on: {where}",
        f"- Peak memory while quantizing: CPU {shown(facts.get('quantize_peak_cpu_gb'), '{:.2f}', ' GB')}, "
        "GPU " + ("none (calibrated on the CPU)" if device.value == "cpu"
                  else shown(facts.get("quantize_peak_gpu_gb"), "{:.2f}", " GB")),
    ]
    if versions.measured and versions.value:
        lines.append("- Software: " + ", ".join(f"{name} {ver}" for name, ver in versions.value.items() if ver))
    else:
        lines.append(f"- Software: {shown(versions)}")
    return "\n".join(lines) + "\n"


def eval_section(facts: ManifestFacts) -> str:
    if facts.stage_reason("eval"):
        return f"## Accuracy\n\nPerplexity: not measured ({facts.stage_reason('eval')}).\n"
    original, quantized = facts.get("ppl_original"), facts.get("ppl_quantized")
    ratio, bound, passed = facts.get("ppl_ratio"), facts.get("ppl_max_ratio"), facts.get("ppl_passed")
    gate = (f"{'passed' if passed.value else 'FAILED'} (ratio <= {bound.value})" if passed.measured and bound.measured
            else shown(passed))
    lines = [
        "## Accuracy", "",
        f"Perplexity on {shown(facts.get('ppl_dataset'))}, {shown(facts.get('ppl_tokens'))} tokens, windows of "
        f"{shown(facts.get('ppl_seq_len'))} tokens, on {shown(facts.get('eval_device'))} "
        "(the quantized model emulated from the checkpoint's files):", "",
        "| Model | Perplexity |", "|---|---|",
        f"| Original | {shown(original, '{:.4f}')} |",
        f"| Quantized | {shown(quantized, '{:.4f}')} |",
        f"| Ratio quantized / original | {shown(ratio, '{:.4f}')} |",
        f"| Gate | {gate} |",
    ]
    return "\n".join(lines) + "\n"


def bench_section(recipe, facts: ManifestFacts) -> str:
    engine, complete = facts.get("bench_engine"), facts.get("bench_complete")
    lines = ["## Inference benchmark", ""]
    if not engine.measured:
        lines.append(f"Not measured ({engine.reason}).")
        return "\n".join(lines) + "\n"
    from orchestrator.stages.reference_server import REFERENCE_LABEL

    if engine.value == REFERENCE_LABEL:
        lines += [f"> **Measured on the {REFERENCE_LABEL}.** These numbers test the endpoint tooling; they say "
                  "nothing about TensorRT-LLM performance.", ""]
    lines.append(f"Engine: {engine.value}. Hardware: {shown(facts.get('bench_hardware'))}. Prompt "
                 f"{shown(facts.get('bench_input_len'))} tokens, output {shown(facts.get('bench_output_len'))} tokens "
                 f"per request, streamed, measured by `orchestrator bench` ({shown(facts.get('bench_ended_at'))}).")
    if complete.measured and not complete.value:
        lines.append(f"\n**Incomplete run**: {facts.value('bench_incomplete_reason')}; only the levels that ran "
                     "are shown.")
    headline_reason = facts.value("bench_headline_reason")

    def head(name: str, fmt: str, suffix: str) -> str:
        fact = facts.get(name)
        if not fact.measured and headline_reason:
            return f"not measured ({headline_reason})"
        return shown(fact, fmt, suffix)

    lines += ["", "| Metric | Value |", "|---|---|",
              f"| Tokens/second at concurrency 1 | {head('bench_tokens_per_s_c1', '{:.2f}', '')} |",
              f"| Latency for 100 output tokens | {head('bench_latency_100_s', '{:.2f}', ' s')} |",
              f"| Time to first token (p50, concurrency 1) | {head('bench_ttft_ms_c1', '{:.1f}', ' ms')} |"]
    method = facts.get("bench_latency_100_method")
    if method.measured:
        lines.append(f"\nLatency for 100 tokens: {method.value}.")
    levels = facts.value("bench_levels") or []
    if levels:
        lines += ["", "| Level | Requests ok | Errors | TTFT p50 ms | ITL p50 ms | e2e p50 s | tok/s aggregate |",
                  "|---|---|---|---|---|---|---|"]
        for level in levels:
            lines.append("| {label} | {ok}/{req} | {errors} | {ttft} | {itl} | {e2e} | {agg} |".format(
                label=level["label"], ok=level["completed"], req=level["requests"], errors=level["errors"],
                ttft=_num(level["ttft_ms"]["p50"], 1), itl=_num(level["itl_ms"]["p50"], 2),
                e2e=_num(level["e2e_s"]["p50"], 2), agg=_num(level["tok_s_aggregate"], 2)))
    return "\n".join(lines) + "\n"


def _num(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def usage_section(recipe) -> str:
    from orchestrator.stages.serve import served_model_name

    where = str(recipe.source_path) if recipe.source_path else "RECIPE.yaml"
    host = "127.0.0.1" if recipe.serve.host in ("0.0.0.0", "::") else recipe.serve.host
    base = f"http://{host}:{recipe.serve.port}"
    chat = json.dumps({"model": served_model_name(recipe), "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Hello"}]})
    lines = ["## Usage", "", "```bash",
             f"orchestrator serve {where} --detach",
             f"curl {base}/v1/chat/completions -H 'Content-Type: application/json' \\",
             f"  -d {shlex.quote(chat)}",
             f"orchestrator bench {where}",
             f"orchestrator stop {where}",
             "```"]
    if not recipe.platform_info.has_gpu:
        from orchestrator.stages.reference_server import REFERENCE_LABEL

        lines += ["", f"On platform `{recipe.platform.value}`, `orchestrator serve` serves the original model with "
                  f"the {REFERENCE_LABEL}. TensorRT-LLM needs an NVIDIA GPU."]
    else:
        lines += ["", f"`orchestrator serve` runs trtllm-serve (TensorRT-LLM) on {recipe.platform_info.gpu}."]
    return "\n".join(lines) + "\n"


def provenance_section(recipe, manifest) -> str:
    from importlib import metadata

    try:
        version = metadata.version("trtllm-orchestrator")
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    return ("## How this card was made\n\n"
            f"Written by trtllm-orchestrator {version} (`orchestrator card`) from the workdir's manifest.json "
            f"(recipe `{recipe.name}`, updated {manifest.updated_at or 'never'}). Every number above comes from "
            "that manifest; a number the pipeline did not measure says so.\n")
