"""Real modelopt on a tiny Mixtral (CPU): quantize -> convert -> verify, through the commands and the library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.integration.tiny_mixtral import build_tiny_mixtral, tiny_recipe, write_corpus

pytestmark = pytest.mark.integration

pytest.importorskip("modelopt.torch.quantization")


def _invoke(*args):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model_dir = build_tiny_mixtral(root / "model")
    corpus = write_corpus(root / "calibration.txt")
    recipe_path = root / "tiny.yaml"
    recipe_path.write_text(yaml.safe_dump(tiny_recipe(model_dir, corpus, root / "work")))
    return {"root": root, "model": model_dir, "corpus": corpus, "recipe": recipe_path, "work": root / "work"}


@pytest.fixture(scope="module")
def commands_ran(workspace):
    """`orchestrator quantize`, then `convert` (from the saved state), as a user runs them."""
    quantized = _invoke("quantize", workspace["recipe"], "--quiet")
    converted = _invoke("convert", workspace["recipe"])
    return quantized, converted


@pytest.fixture(scope="module")
def in_memory(workspace):
    """The library path of the pipeline: quantize, then convert the same in-memory model (tp=2)."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.convert import convert
    from orchestrator.stages.quantize import quantize

    data = tiny_recipe(workspace["model"], workspace["corpus"], workspace["root"] / "work-mem")
    data["checkpoint"]["tp"] = 2
    recipe = validate_recipe(data)
    result = quantize(recipe)
    return result, convert(recipe, model=result.model)


def _raw(path: Path) -> dict:
    """Every tensor as raw numpy values (BF16 as uint16, F8 as uint8): equality is bit equality."""
    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    file = SafetensorsFile(path)
    return {name: file.read(name) for name in file.tensors}


def _header(path: Path) -> dict:
    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    return {name: (info.dtype, list(info.shape)) for name, info in SafetensorsFile(path).tensors.items()}


def test_quantize_command_writes_the_contract_checkpoint(workspace, commands_ran):
    quantized, _ = commands_ran
    assert quantized.exit_code == 0, quantized.output
    ckpt = workspace["work"] / "checkpoint-hf"
    header = _header(ckpt / "model.safetensors")
    prefix = "model.layers.0.block_sparse_moe.experts.0.w2"  # [hidden 128, ffn 256]
    assert header[f"{prefix}.weight"] == ("U8", [128, 128])
    assert header[f"{prefix}.weight_scale"] == ("F8_E4M3", [128, 16])
    assert header[f"{prefix}.weight_scale_2"] == ("F32", [])
    assert header[f"{prefix}.input_scale"] == ("F32", [])
    assert header["lm_head.weight"] == ("BF16", [512, 128])
    assert header["model.layers.0.block_sparse_moe.gate.weight"] == ("BF16", [4, 128])
    assert (ckpt / "tokenizer.json").is_file() and (ckpt / "hf_quant_config.json").is_file()
    provenance = json.loads((ckpt / "orchestrator.json").read_text())
    assert provenance["recipe"]["name"] == "tiny-test"
    assert len(provenance["calibration"]["sha256"]) == 64 and provenance["calibration"]["samples"] == 16
    assert (workspace["work"] / "modelopt-state" / "modelopt_state.pth").is_file()
    record = json.loads((workspace["work"] / "manifest.json").read_text())["stages"]["quantize"]
    assert record["status"] == "done" and record["metrics"]["device"] == "cpu"
    assert record["peak_cpu_mem_gb"] > 0 and record["versions"]["nvidia-modelopt"].startswith("0.47")


def test_convert_from_saved_state_and_verify_both(workspace, commands_ran):
    _, converted = commands_ran
    assert converted.exit_code == 0, converted.output
    trt = workspace["work"] / "checkpoint-trtllm"
    assert sorted(p.name for p in trt.glob("rank*.safetensors")) == ["rank0.safetensors"]
    for ckpt in ("checkpoint-hf", "checkpoint-trtllm"):
        result = _invoke("verify", workspace["work"] / ckpt)
        assert result.exit_code == 0, result.output
        assert "Compression ratio" in result.output and "contract OK" in result.output
    both = _invoke("verify", workspace["recipe"], "--json")
    assert both.exit_code == 0, both.output
    reports = json.loads(both.output)
    assert [r["kind"] for r in reports] == ["hf", "trtllm"]
    assert reports[0]["original_source"].startswith("source model") and reports[0]["compression_ratio"] > 2


def test_in_memory_convert_equals_convert_from_saved_state(workspace, commands_ran, in_memory):
    """Same recipe and data: the reused model and the restored one export the same bytes."""
    result, converted = in_memory
    assert converted.reused_model and converted.rank_files == ["rank0.safetensors", "rank1.safetensors"]
    assert result.calibration["sha256"] == json.loads(
        (workspace["work"] / "checkpoint-hf" / "orchestrator.json").read_text())["calibration"]["sha256"]
    ours = _raw(result.checkpoint_dir / "model.safetensors")
    theirs = _raw(workspace["work"] / "checkpoint-hf" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)


def test_tp2_rank_files_recombine_to_tp1(workspace, commands_ran, in_memory):
    """tp=2 splits dense and proj along the input dim: the halves concatenate to the tp=1 tensors."""
    import numpy as np

    from orchestrator.stages.verify import verify_checkpoint

    _, converted = in_memory
    report = verify_checkpoint(converted.checkpoint_dir)
    assert report.mapping["tp_size"] == 2 and len(report.files) == 2
    whole = _raw(workspace["work"] / "checkpoint-trtllm" / "rank0.safetensors")
    halves = [_raw(converted.checkpoint_dir / f"rank{r}.safetensors") for r in (0, 1)]
    for name in ("transformer.layers.0.attention.dense", "transformer.layers.1.mlp.proj"):
        for leaf in ("weight", "weights_scaling_factor"):
            joined = np.concatenate([h[f"{name}.{leaf}"] for h in halves], axis=-1)
            assert np.array_equal(joined, whole[f"{name}.{leaf}"]), f"{name}.{leaf}"
        assert np.array_equal(halves[0][f"{name}.weights_scaling_factor_2"], whole[f"{name}.weights_scaling_factor_2"])


def test_layerwise_calibration_gives_the_same_checkpoint(workspace, commands_ran):
    """modelopt's layerwise max calibration sees the same activations: same scales, and its cache is cleared."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quantize import quantize

    work = workspace["root"] / "work-layerwise"
    result = quantize(validate_recipe(tiny_recipe(workspace["model"], workspace["corpus"], work, layerwise=True)))
    assert result.calibration["layerwise"] and result.calibration["forward_passes"] == 2  # one per layer
    assert not (work / "layerwise-calib").exists()
    ours = _raw(result.checkpoint_dir / "model.safetensors")
    theirs = _raw(workspace["work"] / "checkpoint-hf" / "model.safetensors")
    assert all((ours[k] == theirs[k]).all() for k in theirs)


def _corrupt_truncate(ckpt: Path) -> str:
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    return "truncated file"


def _rewrite(ckpt: Path, edit) -> str:
    import torch
    from safetensors.torch import load_file, save_file

    path = ckpt / "model.safetensors"
    tensors = load_file(str(path))
    rule = edit(tensors, torch)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return rule


TARGET = "model.layers.1.self_attn.o_proj"


def _nan_scale(tensors, torch):
    tensors[f"{TARGET}.weight_scale_2"] = torch.tensor(float("nan"))
    return "nvfp4.scale-positive"


def _wrong_dtype(tensors, torch):
    tensors[f"{TARGET}.weight_scale"] = tensors[f"{TARGET}.weight_scale"].float()
    return "nvfp4.scale-dtype"


def _missing_scale(tensors, torch):
    del tensors[f"{TARGET}.weight_scale"]
    return "nvfp4.scale-present"


def _shape_mismatch(tensors, torch):
    tensors[f"{TARGET}.weight"] = tensors[f"{TARGET}.weight"][:, :32].contiguous()
    return "nvfp4.shape-config"


@pytest.mark.parametrize("corrupt", [
    _corrupt_truncate,
    lambda ckpt: _rewrite(ckpt, _nan_scale),
    lambda ckpt: _rewrite(ckpt, _wrong_dtype),
    lambda ckpt: _rewrite(ckpt, _missing_scale),
    lambda ckpt: _rewrite(ckpt, _shape_mismatch),
], ids=["truncated", "nan-scale", "wrong-dtype", "missing-scale", "shape-mismatch"])
def test_corrupted_checkpoint_exits_2_naming_tensor_and_rule(workspace, commands_ran, tmp_path, corrupt):
    ckpt = tmp_path / "checkpoint-hf"
    shutil.copytree(workspace["work"] / "checkpoint-hf", ckpt)
    expected = corrupt(ckpt)
    result = _invoke("verify", ckpt)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    if expected != "truncated file":
        assert TARGET in result.output
