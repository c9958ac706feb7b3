"""verify: the NVFP4 contract rules on synthetic checkpoints, and the exit code and message of each corruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.errors import UserError
from orchestrator.stages.verify import ContractViolation, verify_checkpoint
from tests.unit.verify.synthetic_checkpoint import (
    Raw,
    bf16,
    hf_tensors,
    read_safetensors,
    write_hf_checkpoint,
    write_safetensors,
    write_trtllm_checkpoint,
)

Q = "model.layers.0.self_attn.o_proj"
EXPERT = "model.layers.0.block_sparse_moe.experts.1.w2"


def test_clean_hf_checkpoint_passes_with_its_sizes(tmp_path):
    report = verify_checkpoint(write_hf_checkpoint(tmp_path / "hf"))
    assert report.kind == "hf" and report.quant_algo == "NVFP4" and report.kv_cache_quant_algo == "FP8"
    assert report.quantized_modules == 4 + 2 * 3
    assert report.excluded_modules == 2  # lm_head and the router; the embedding is not a linear
    assert set(report.bytes_by_dtype) == {"U8", "F8_E4M3", "F32", "BF16"}
    assert report.checkpoint_bytes == sum(report.bytes_by_dtype.values())
    assert report.original_source.startswith("estimated") and 2 < report.compression_ratio < 4


def test_clean_trtllm_checkpoint_passes_for_tp1_and_tp2(tmp_path):
    one = verify_checkpoint(write_trtllm_checkpoint(tmp_path / "tp1"))
    two = verify_checkpoint(write_trtllm_checkpoint(tmp_path / "tp2", tp=2))
    assert one.kind == two.kind == "trtllm"
    assert two.files == ["rank0.safetensors", "rank1.safetensors"] and two.mapping["tp_size"] == 2
    assert one.quantized_modules == 4 and two.quantized_modules == 8


def _edited(tmp_path, edit, **quant):
    tensors = hf_tensors()
    edit(tensors)
    return write_hf_checkpoint(tmp_path / "hf", tensors, **quant)


def _violation(path) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        verify_checkpoint(path)
    return caught.value


def _scale_f32(t):
    t[f"{Q}.weight_scale"] = Raw("F32", t[f"{Q}.weight_scale"].array.astype(np.float32))


def _weight_bf16(t):
    t[f"{Q}.weight"] = Raw("BF16", np.zeros((32, 32), np.uint16))


def _drop_scale(t):
    del t[f"{Q}.weight_scale"]


def _drop_global(t):
    del t[f"{Q}.weight_scale_2"]


def _drop_input(t):
    del t[f"{Q}.input_scale"]


def _narrow_weight(t):
    t[f"{EXPERT}.weight"] = Raw("U8", t[f"{EXPERT}.weight"].array[:, :16])
    t[f"{EXPERT}.weight_scale"] = Raw("F8_E4M3", t[f"{EXPERT}.weight_scale"].array[:, :2])


def _wrong_scale_shape(t):
    t[f"{Q}.weight_scale"] = Raw("F8_E4M3", t[f"{Q}.weight_scale"].array[:, :1])


def _nan_global(t):
    t[f"{Q}.weight_scale_2"] = Raw("F32", np.array(np.nan, np.float32))


def _nan_block_scale(t):
    scales = t[f"{Q}.weight_scale"].array.copy()
    scales[0, 0] = 0x7F
    t[f"{Q}.weight_scale"] = Raw("F8_E4M3", scales)


def _zero_input_scale(t):
    t[f"{Q}.input_scale"] = Raw("F32", np.array(0.0, np.float32))


def _inf_in_bf16(t):
    values = t["lm_head.weight"].array.copy()
    values[1, 2] = bf16(np.array([np.inf]))[0]
    t["lm_head.weight"] = Raw("BF16", values)


def _quantized_router(t):
    gate = "model.layers.0.block_sparse_moe.gate"
    t[f"{gate}.weight"] = Raw("U8", np.zeros((2, 16), np.uint8))
    t[f"{gate}.weight_scale"] = Raw("F8_E4M3", np.full((2, 2), 0x38, np.uint8))
    t[f"{gate}.weight_scale_2"] = Raw("F32", np.array(1.0, np.float32))
    t[f"{gate}.input_scale"] = Raw("F32", np.array(1.0, np.float32))


def _unlisted_bf16_linear(t):
    for leaf in ("weight_scale", "weight_scale_2", "input_scale"):
        del t[f"{Q}.{leaf}"]
    t[f"{Q}.weight"] = Raw("BF16", np.zeros((32, 32), np.uint16))


def _no_kv_scale(t):
    del t["model.layers.0.self_attn.v_proj.v_scale"]


CASES = [
    (_scale_f32, f"{Q}.weight_scale", "nvfp4.scale-dtype"),
    (_weight_bf16, f"{Q}.weight", "nvfp4.weight-dtype"),
    (_drop_scale, f"{Q}.weight_scale", "nvfp4.scale-present"),
    (_drop_global, f"{Q}.weight_scale_2", "nvfp4.scale-present"),
    (_drop_input, f"{Q}.input_scale", "nvfp4.scale-present"),
    (_narrow_weight, f"{EXPERT}.weight", "nvfp4.shape-config"),
    (_wrong_scale_shape, f"{Q}.weight_scale", "nvfp4.scale-shape"),
    (_nan_global, f"{Q}.weight_scale_2", "nvfp4.scale-positive"),
    (_nan_block_scale, f"{Q}.weight_scale", "nvfp4.scale-positive"),
    (_zero_input_scale, f"{Q}.input_scale", "nvfp4.scale-positive"),
    (_inf_in_bf16, "lm_head.weight", "finite"),
    (_quantized_router, "model.layers.0.block_sparse_moe.gate.weight", "excluded-unquantized"),
    (_unlisted_bf16_linear, f"{Q}.weight", "exclude-list"),
    (_no_kv_scale, "model.layers.0.self_attn.v_proj.v_scale", "kv-scales"),
]


@pytest.mark.parametrize(("edit", "tensor", "rule"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_each_broken_rule_names_the_tensor_and_the_rule(tmp_path, edit, tensor, rule):
    error = _violation(_edited(tmp_path, edit))
    assert any(v.rule == rule and v.tensor.split(" ")[0] == tensor for v in error.violations), error.violations
    assert error.exit_code == 2


def test_truncated_file_is_a_layout_violation(tmp_path):
    path = write_hf_checkpoint(tmp_path / "hf")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:-100])
    error = _violation(path)
    assert error.violations[0].rule == "layout" and "truncated file" in error.violations[0].detail
    (path / "model.safetensors").write_bytes(data[:5])
    assert "truncated" in _violation(path).message


def test_quant_configs_must_agree(tmp_path):
    error = _violation(write_hf_checkpoint(tmp_path / "hf", quant_algo="FP8"))
    assert any(v.rule == "hf.quant-config" and "quant_algo" in v.detail for v in error.violations)


def test_trtllm_rank_files_must_match_the_mapping(tmp_path):
    path = write_trtllm_checkpoint(tmp_path / "trt", tp=2)
    (path / "rank1.safetensors").rename(path / "rank2.safetensors")
    rules = {(v.tensor, v.rule) for v in _violation(path).violations}
    assert ("rank1.safetensors", "trtllm.rank-files") in rules and ("rank2.safetensors", "trtllm.rank-files") in rules


def test_trtllm_ranks_of_one_stage_must_agree(tmp_path):
    path = write_trtllm_checkpoint(tmp_path / "trt", tp=2)
    tensors = read_safetensors(path / "rank1.safetensors")
    del tensors["transformer.ln_f.weight"]
    write_safetensors(path / "rank1.safetensors", tensors)
    assert any(v.rule == "trtllm.rank-consistency" for v in _violation(path).violations)


def test_trtllm_shapes_follow_tp(tmp_path):
    path = write_trtllm_checkpoint(tmp_path / "trt", tp=2)
    config = json.loads((path / "config.json").read_text())
    config["mapping"].update(world_size=1, tp_size=1, moe_tp_size=1)
    (path / "config.json").write_text(json.dumps(config))
    (path / "rank1.safetensors").unlink()
    violations = _violation(path).violations
    assert any(v.rule == "nvfp4.shape-config" and "attention.qkv" in v.tensor for v in violations)


def test_original_size_from_argument_then_provenance_then_estimate(tmp_path):
    path = write_hf_checkpoint(tmp_path / "hf")
    source = tmp_path / "source"
    source.mkdir()
    write_safetensors(source / "model.safetensors", {"w": Raw("BF16", np.zeros((1000,), np.uint16))})
    assert verify_checkpoint(path, original=source).original_bytes == 2000
    (path / "orchestrator.json").write_text(json.dumps({"source": {"bytes": 12345}}))
    report = verify_checkpoint(path)
    assert report.original_bytes == 12345 and report.original_source.startswith("source model")
    with pytest.raises(UserError, match="no \\*.safetensors"):
        verify_checkpoint(path, original=tmp_path)


def test_not_a_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint here"):
        verify_checkpoint(tmp_path)
    with pytest.raises(UserError, match="not a directory"):
        verify_checkpoint(tmp_path / "missing")


def test_cli_prints_the_size_table_and_exits_2_on_a_violation(tmp_path, cli):
    good = write_hf_checkpoint(tmp_path / "good")
    result = cli("verify", good)
    assert result.exit_code == 0, result.output
    for row in ("Original size", "Quantized size", "Compression ratio", "Size reduction", "F8_E4M3"):
        assert row in result.output
    bad = _edited(tmp_path, _drop_scale)
    result = cli("verify", bad)
    assert result.exit_code == 2
    assert f"{Q}.weight_scale" in result.output and "nvfp4.scale-present" in result.output
    assert "Traceback" not in result.output
