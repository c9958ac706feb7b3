"""memory=stream's code path on the CPU (real modelopt, tiny Mixtral): the same checkpoint as the in-memory core.

On a CPU the streamer's device is the CPU, so nothing moves, but everything else runs as
on a GPU: layerwise calibration driven through the streamer's hooks, and modelopt's
streaming export writer entered through `streamed_export`. Its tensors and JSON must
equal those of the plain in-memory path, bit for bit.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
pytest.importorskip("modelopt.torch.quantization")

from tests.integration.tiny_mixtral import (  # noqa: E402
    VOCAB_SIZE,
    build_tiny_mixtral,
    checkpoint_tensors,
    same_bits,
)


def _core(model_dir, out, memory):
    from transformers import AutoModelForCausalLM

    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.calibration import CalibrationData, ForwardLoop
    from orchestrator.stages.quant_config import build_quant_config
    from orchestrator.stages.quantize import quantize_and_export

    recipe = validate_recipe({"name": "t", "model": {"source": str(model_dir)}, "platform": "cpu",
                              "quantize": {"format": "nvfp4", "kv_cache": "fp8"}, "run": {"until": "convert"}})
    ids = torch.randint(3, VOCAB_SIZE, (16, 64), generator=torch.Generator().manual_seed(0))
    loop = ForwardLoop(CalibrationData(ids, "synthetic", "-", 16), "cpu", 8, None)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    (out / "ckpt").mkdir(parents=True)
    (out / "state").mkdir()
    core = quantize_and_export(model, build_quant_config(recipe), loop, memory=memory, device="cpu",
                               dtype=torch.bfloat16, export_dir=out / "ckpt", state_dir=out / "state", source={})
    return core, loop


def test_stream_path_writes_the_in_memory_checkpoint(tmp_path):
    model_dir = build_tiny_mixtral(tmp_path / "model")
    resident, _ = _core(model_dir, tmp_path / "resident", "cpu")
    streamed, loop = _core(model_dir, tmp_path / "stream", "stream")
    assert not resident.layerwise and resident.streamed is None
    assert streamed.layerwise and loop.calls == 2  # one capture pass per decoder layer
    # Each layer once for calibration, once for export's probe forward; the writer finds both still resident.
    assert streamed.streamed["loads"] == 4
    expected, got = checkpoint_tensors(tmp_path / "resident" / "ckpt"), checkpoint_tensors(tmp_path / "stream" / "ckpt")
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert same_bits(got[name], tensor), name
    for name in ("config.json", "hf_quant_config.json"):
        assert (json.loads((tmp_path / "stream" / "ckpt" / name).read_text())
                == json.loads((tmp_path / "resident" / "ckpt" / name).read_text())), name
