"""The accuracy gate's arithmetic and the eval command's failure before any model is loaded."""

from __future__ import annotations

import math

import pytest
import yaml

from orchestrator.stages.evaluate import EvalResult, gate
from tests.conftest import RECIPES


@pytest.mark.parametrize(("original", "quantized", "max_ratio", "passed"), [
    (10.0, 10.4, 1.05, True), (10.0, 10.5, 1.05, True), (10.0, 10.6, 1.05, False), (10.0, 9.0, 1.0, True),
    (10.0, math.nan, 1.05, False), (10.0, math.inf, 1.05, False), (math.nan, 10.0, 1.05, False),
])
def test_gate(original, quantized, max_ratio, passed):
    assert gate(original, quantized, max_ratio)[1] is passed


def test_metrics_are_json_safe_for_a_blown_up_model():
    result = EvalResult(dataset="builtin", text_source="x", original_perplexity=20.0, quantized_perplexity=math.inf,
                        ratio=math.inf, max_ratio=1.1, passed=False, tokens=10, text_tokens=11, windows=1, seq_len=8,
                        stride=8, max_tokens=None, device="cpu", dtype="bfloat16", checkpoint="c", quant_algo="NVFP4",
                        kv_cache_quant_algo=None, kv_cache_emulated=False)
    assert result.metrics["quantized_perplexity"] == "inf" and result.metrics["original_perplexity"] == 20.0


def test_eval_without_a_checkpoint_is_a_user_error_and_is_recorded(cli, tmp_path):
    import json

    recipe = yaml.safe_load((RECIPES / "tiny-mixtral-nvfp4-cpu.yaml").read_text())
    recipe["workdir"] = str(tmp_path / "work")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = cli("eval", path)
    assert result.exit_code == 2, result.output
    assert "no exported checkpoint" in result.output and "orchestrator quantize" in result.output
    record = json.loads((tmp_path / "work" / "manifest.json").read_text())["stages"]["eval"]
    assert record["status"] == "failed" and "no exported checkpoint" in record["reason"]
