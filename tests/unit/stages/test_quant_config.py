"""The modelopt config a recipe implies: format preset + KV cache + exclusions + layerwise."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from orchestrator.platforms import FORMATS
from orchestrator.stages.quant_config import exclude_entry


@pytest.mark.parametrize(("pattern", "quantizer", "matches"), [
    ("lm_head", "lm_head.weight_quantizer", True),
    ("lm_head", "model.lm_head.input_quantizer", True),
    ("lm_head", "model.lm_head_extra.weight_quantizer", False),
    ("*block_sparse_moe.gate*", "model.layers.3.block_sparse_moe.gate.weight_quantizer", True),
    ("model.layers.0.*", "model.layers.0.self_attn.q_proj.weight_quantizer", True),
    ("model.layers.0.*", "model.layers.1.self_attn.q_proj.weight_quantizer", False),
])
def test_exclude_patterns_become_quantizer_patterns(pattern, quantizer, matches):
    entry = exclude_entry(pattern)
    assert entry["enable"] is False
    assert fnmatchcase(quantizer, entry["quantizer_name"]) is matches


@pytest.fixture(scope="module")
def mtq():
    return pytest.importorskip("modelopt.torch.quantization")


def test_every_format_names_a_modelopt_config(mtq):
    for fmt in FORMATS.values():
        if fmt.modelopt_config is not None:
            assert hasattr(mtq, fmt.modelopt_config), f"{fmt.name}: modelopt has no {fmt.modelopt_config}"


def test_format_table_names_the_calibration_algorithm_of_its_modelopt_config(mtq):
    """Recipe checks (no modelopt import) decide fsdp2 eligibility from Format.calibration; it must match modelopt."""
    from orchestrator.stages.quant_config import algorithm_method

    for fmt in FORMATS.values():
        if fmt.modelopt_config is not None:
            # No algorithm in a config means modelopt's default, max.
            assert (algorithm_method(getattr(mtq, fmt.modelopt_config)) or "max") == fmt.calibration, fmt.name


def _recipe(**quantize):
    from orchestrator.recipe.loader import validate_recipe

    return validate_recipe({"name": "t", "model": {"source": "org/model"}, "platform": "cpu",
                            "quantize": {"calibration": {"dataset": "c4"}, **quantize}})


def test_nvfp4_with_fp8_kv_and_excludes(mtq, tmp_path):
    from orchestrator.stages.quant_config import build_quant_config

    config = build_quant_config(_recipe(format="nvfp4", kv_cache="fp8", exclude=["lm_head", "*experts.0*"]))
    entries = config["quant_cfg"]
    assert entries[:len(mtq.NVFP4_DEFAULT_CFG["quant_cfg"])] == mtq.NVFP4_DEFAULT_CFG["quant_cfg"]
    assert {"quantizer_name": "*[kv]_bmm_quantizer", "cfg": {"num_bits": (4, 3), "axis": None}} in entries
    assert entries[-2:] == [{"quantizer_name": "*lm_head.*", "enable": False},
                            {"quantizer_name": "*experts.0*", "enable": False}]
    assert config["algorithm"] == "max"
    mtq.config.QuantizeConfig.model_validate(config)  # modelopt accepts it
    layerwise = build_quant_config(_recipe(), layerwise_dir=tmp_path)
    assert layerwise["algorithm"] == {"method": "max", "layerwise": {
        "enable": True, "checkpoint_dir": str(tmp_path), "calib_mutates_weights": False}}
    mtq.config.QuantizeConfig.model_validate(layerwise)


def test_nothing_to_quantize_gives_no_config(mtq):
    from orchestrator.stages.quant_config import build_quant_config

    assert build_quant_config(_recipe(format="none", kv_cache="none")) is None
    kv_only = build_quant_config(_recipe(format="none", kv_cache="fp8"))
    assert kv_only["quant_cfg"][0] == {"quantizer_name": "*", "enable": False}
