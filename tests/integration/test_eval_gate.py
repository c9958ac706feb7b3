"""`orchestrator eval` on the shipped tiny Mixtral, quantized to NVFP4 by real modelopt on the CPU.

The quantized perplexity comes from the exported files (emulated NVFP4 weights and
activations, FP8 KV cache); it must pass the shipped recipe's gate, and a checkpoint
with one blown-up scale must fail it with exit 3. Calibration and evaluation are cut
down (16 x 128 calibration tokens, 2048 evaluation tokens) to keep CI fast.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import RECIPES

pytestmark = pytest.mark.integration

pytest.importorskip("modelopt.torch.quantization")

TINY = RECIPES / "tiny-mixtral-nvfp4-cpu.yaml"
EVAL_TOKENS = 2048
# The last layer's attention output projection: every token passes through it, straight into the final norm.
CORRUPTED = "model.layers.3.self_attn.o_proj.weight_scale_2"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The shipped recipe, quantized once into a temporary workdir (library call, as the pipeline does)."""
    from orchestrator.models import builtin_model_dir
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quantize import quantize

    if not (builtin_model_dir("builtin:tiny-mixtral") / "model.safetensors").is_file():
        pytest.skip("the embedded tiny Mixtral is not in this checkout")
    root = tmp_path_factory.mktemp("eval")
    data = yaml.safe_load(TINY.read_text())
    data["workdir"] = str(root / "work")
    data["quantize"]["calibration"].update(samples=16, seq_len=128, batch_size=8)
    data["eval"]["perplexity"]["max_tokens"] = EVAL_TOKENS
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    quantize(validate_recipe(data))
    return {"recipe": path, "root": root, "work": root / "work", "max_ratio": data["eval"]["perplexity"]["max_ratio"]}


def test_nvfp4_perplexity_passes_the_shipped_gate(quantized, cli):
    result = cli("eval", quantized["recipe"], "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "gate passed" in result.output

    metrics = json.loads((quantized["work"] / "eval.json").read_text())["result"]
    assert metrics["passed"] and metrics["text_tokens"] == EVAL_TOKENS and metrics["dataset"] == "builtin"
    # A trained model: far below the 4096-token vocabulary.
    assert metrics["original_perplexity"] < 100
    # NVFP4 costs a little, never nothing (the emulation is on) and never much on this model.
    assert 1.0001 < metrics["ratio"] <= quantized["max_ratio"]
    assert metrics["emulated_layers"] == {"nvfp4/nvfp4": 4 * (4 + 4 * 3)}  # layers x (qkvo + experts x w1 w2 w3)
    assert metrics["kv_cache_quant_algo"] == "FP8" and metrics["kv_cache_emulated"]

    record = json.loads((quantized["work"] / "manifest.json").read_text())["stages"]["eval"]
    assert record["status"] == "done" and record["fingerprint"]
    assert record["metrics"]["quantized_perplexity"] == metrics["quantized_perplexity"]
    print(f"\n[eval] BF16 {metrics['original_perplexity']:.4f}  NVFP4 {metrics['quantized_perplexity']:.4f}  "
          f"ratio {metrics['ratio']:.4f}  {metrics['tokens']} tokens  {metrics['durations_s']}")


def test_a_blown_up_scale_fails_the_gate_with_exit_3(quantized, cli):
    import torch
    from safetensors.torch import load_file, save_file

    work = quantized["root"] / "corrupted"
    shutil.copytree(quantized["work"] / "checkpoint-hf", work / "checkpoint-hf")
    weights = work / "checkpoint-hf" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors[CORRUPTED] = tensors[CORRUPTED] * torch.tensor(1e4)
    save_file(tensors, str(weights), metadata={"format": "pt"})

    result = cli("eval", quantized["recipe"], f"workdir={work}", "eval.perplexity.max_tokens=1024", "--device", "cpu")
    assert result.exit_code == 3, result.output
    metrics = json.loads((work / "eval.json").read_text())["result"]
    assert not metrics["passed"] and metrics["ratio"] > 10 * quantized["max_ratio"]
    # Both numbers, as printed, are in the one-line message.
    assert f"{metrics['quantized_perplexity']:.4f}" in result.output
    assert f"{metrics['original_perplexity']:.4f}" in result.output
    assert "max_ratio" in result.output and "Traceback" not in result.output

    record = json.loads((work / "manifest.json").read_text())["stages"]["eval"]
    assert record["status"] == "failed" and record["metrics"]["ratio"] == metrics["ratio"]
    print(f"\n[eval] corrupted {CORRUPTED} x1e4: NVFP4 {metrics['quantized_perplexity']:.1f}, "
          f"ratio {metrics['ratio']:.1f}")
