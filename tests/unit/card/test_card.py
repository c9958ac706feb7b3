"""`orchestrator card`: every number on the card is the manifest's; absent numbers say "not measured" and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.manifest import StageRecord, record_stage
from orchestrator.stages.card.front_matter import read_front_matter
from orchestrator.stages.reference_server import REFERENCE_LABEL
from tests.conftest import REPO

TINY = REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml"

QUANTIZE = StageRecord(
    status="done", duration_s=123.4, host="node-7", gpu="NVIDIA H100 80GB HBM3", peak_cpu_mem_gb=5.5,
    peak_gpu_mem_gb=24.01, versions={"nvidia-modelopt": "0.47.0", "torch": "2.13.0"},
    metrics={"device": "cuda", "format": "nvfp4", "calibration_s": 28.61, "source_bytes": 93_405_892_608,
             "checkpoint_bytes": 26_650_000_000,
             "calibration": {"dataset": "c4", "source": "allenai/c4 en validation", "samples": 512, "seq_len": 512,
                             "layerwise": False}})
VERIFY_HF = {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16, "quantized_modules": 896,
             "excluded_modules": 33, "checkpoint_bytes": 26_648_000_000, "original_bytes": 93_405_892_608,
             "original_source": "source model safetensors headers"}
EVAL = StageRecord(status="done", host="node-7", metrics={
    "dataset": "wikitext-2", "text_source": "wikitext-2-raw-v1 test", "tokens": 287_000, "seq_len": 512,
    "original_perplexity": 3.7012, "quantized_perplexity": 3.8457, "ratio": 1.039, "max_ratio": 1.05,
    "passed": True, "device": "cuda"})
BENCH = StageRecord(status="done", ended_at="2026-11-27T12:00:00+0000", metrics={
    "complete": True, "incomplete_reason": None, "engine": REFERENCE_LABEL, "hardware": "CPU: Test CPU (2 cores)",
    "url": "http://127.0.0.1:8000", "api": "chat", "model": "m", "input_len": 64, "output_len": 32,
    "tokens_per_s_c1": 11.8, "latency_100_tokens_s": 9.151, "latency_100_method": "scaled from output_len 32: x",
    "ttft_ms_c1": 200.3, "headline_reason": None,
    "levels": [{"label": "c=1", "concurrency": 1, "request_rate": None, "complete": True, "requests": 8,
                "completed": 8, "errors": 0, "ttft_ms": {"p50": 200.3}, "itl_ms": {"p50": 90.41},
                "e2e_s": {"p50": 3.07}, "tok_s_per_request": {"mean": 11.8}, "tok_s_aggregate": 9.09}]})


def _setup(tmp_path: Path, model_readme: str | None = None) -> Path:
    """A recipe on a local model dir, a workdir with a checkpoint-hf dir, and no manifest yet."""
    model = tmp_path / "base-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "mixtral", "num_local_experts": 8}))
    if model_readme is not None:
        (model / "README.md").write_text(model_readme)
    data = yaml.safe_load(TINY.read_text())
    data["model"]["source"] = str(model)
    data["quantize"]["calibration"]["dataset"] = "c4"
    data["eval"]["perplexity"]["dataset"] = "wikitext-2"
    data["workdir"] = str(tmp_path / "work")
    (tmp_path / "work" / "checkpoint-hf").mkdir(parents=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def _record(tmp_path: Path, stage: str, record: StageRecord) -> None:
    record_stage(tmp_path / "work" / "manifest.json", "tiny-mixtral-nvfp4-cpu", stage, record)


def _card(cli, recipe: Path) -> tuple[dict, str]:
    result = cli("card", recipe)
    assert result.exit_code == 0, result.output
    path = recipe.parent / "work" / "checkpoint-hf" / "README.md"
    assert f"wrote {path}" in result.output
    text = path.read_text()
    return read_front_matter(path), text


@pytest.mark.parametrize("verify_key", ["hf", "checkpoint_hf"])  # `orchestrator verify` and the pipeline
def test_card_numbers_are_the_manifest_numbers(cli, tmp_path, verify_key):
    recipe = _setup(tmp_path, "---\nlicense: apache-2.0\n---\n# base\n")
    _record(tmp_path, "quantize", QUANTIZE)
    _record(tmp_path, "verify", StageRecord(status="done", metrics={verify_key: VERIFY_HF}))
    _record(tmp_path, "eval", EVAL)
    _record(tmp_path, "bench", BENCH)
    front, text = _card(cli, recipe)

    assert front["license"] == "apache-2.0" and "inherited from" in text
    assert front["quantization"]["quant_algo"] == "NVFP4" and front["quantization"]["group_size"] == 16
    assert front["quantization"]["tool"] == "nvidia-modelopt 0.47.0"
    assert "nvfp4" in front["tags"] and "base_model" not in front  # a local directory is not a hub id
    # sizes, ratio and reduction from verify's bytes
    assert "| Original | 86.99 GiB (93,405,892,608 bytes) |" in text
    assert "(26,648,000,000 bytes)" in text
    assert f"| Compression ratio | {93_405_892_608 / 26_648_000_000:.2f}x |" in text
    assert f"| Size reduction | {100 * (1 - 26_648_000_000 / 93_405_892_608):.1f}% |" in text
    # method, calibration, time, exclusions, hardware
    assert "`c4` (allenai/c4 en validation)" in text and "512 x 512 tokens" in text
    assert "Calibration time: 28.6 s" in text and "123.4 s" in text
    assert "left unquantized in the checkpoint: 33, quantized: 896" in text
    assert "cuda on host `node-7`, GPU NVIDIA H100 80GB HBM3" in text and "GPU 24.01 GB" in text
    assert "nvidia-modelopt 0.47.0, torch 2.13.0" in text
    # eval
    assert "| Original | 3.7012 |" in text and "| Quantized | 3.8457 |" in text
    assert "| Ratio quantized / original | 1.0390 |" in text and "passed (ratio <= 1.05)" in text
    # bench, labelled as the reference engine, with the hardware it ran on
    assert "| Tokens/second at concurrency 1 | 11.80 |" in text
    assert "| Latency for 100 output tokens | 9.15 s |" in text
    assert "| Time to first token (p50, concurrency 1) | 200.3 ms |" in text
    assert "Measured on the CPU reference engine (transformers serve)" in text
    assert "Hardware: CPU: Test CPU (2 cores)" in text
    assert "| c=1 | 8/8 | 0 | 200.3 | 90.41 | 3.07 | 9.09 |" in text
    # usage
    assert "orchestrator serve" in text and "curl http://127.0.0.1:8000/v1/chat/completions" in text
    assert "not measured" not in text


def test_absent_numbers_say_not_measured_with_the_reason(cli, tmp_path):
    recipe = _setup(tmp_path)  # base model README without front matter -> license other
    _record(tmp_path, "quantize", QUANTIZE)
    _record(tmp_path, "eval", StageRecord(status="failed", reason="perplexity ratio 1.3 > 1.05"))
    front, text = _card(cli, recipe)

    assert front["license"] == "other"
    assert "License: `other` (not found in the front matter of README.md or in config.json" in text
    # verify did not run: the sizes come from quantize's source_bytes only, the quantized size is absent
    assert "| Original | 86.99 GiB (93,405,892,608 bytes) |" in text
    assert "| Quantized (checkpoint weights) | not measured (the verify stage has not run; run " \
           "`orchestrator verify RECIPE`) |" in text
    assert "| Compression ratio | not measured (the verify stage has not run" in text
    assert "Perplexity: not measured (the eval stage is failed: perplexity ratio 1.3 > 1.05)." in text
    assert "## Inference benchmark\n\nNot measured (the bench stage has not run; run `orchestrator bench RECIPE`)." \
           in text
    for invented in ("3.70", "tok/s aggregate |"):
        assert invented not in text


def test_bench_without_concurrency_1_states_why(cli, tmp_path):
    recipe = _setup(tmp_path)
    metrics = {**BENCH.metrics, "tokens_per_s_c1": None, "latency_100_tokens_s": None, "ttft_ms_c1": None,
               "latency_100_method": None, "headline_reason": "concurrency 1 is not in the sweep",
               "complete": False, "incomplete_reason": "time budget of 60 s spent (bench.budget_s)"}
    _record(tmp_path, "bench", StageRecord(status="done", metrics=metrics))
    _, text = _card(cli, recipe)
    assert "| Tokens/second at concurrency 1 | not measured (concurrency 1 is not in the sweep) |" in text
    assert "**Incomplete run**: time budget of 60 s spent" in text


def test_card_without_a_checkpoint_is_a_user_error(cli, tmp_path):
    recipe = _setup(tmp_path)
    (tmp_path / "work" / "checkpoint-hf").rmdir()
    result = cli("card", recipe)
    assert result.exit_code == 2 and "no quantized checkpoint" in result.output
