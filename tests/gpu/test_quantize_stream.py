"""memory=stream on CUDA: weights in CPU memory, each decoder layer on the GPU once; same checkpoint as memory=gpu.

- the stage with memory=stream writes the very tensors memory=gpu writes (bit for bit),
  and leaves the quantized model wholly in CPU memory;
- LayerStreamer swaps a layer's data for GPU copies and gives back the very CPU tensors;
- a forward through the streamed model equals the forward of the model on the GPU.
Run: python -m pytest -q -s -m gpu tests/gpu/test_quantize_stream.py  (prints the numbers)
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("modelopt.torch.quantization")

from tests.integration.tiny_mixtral import (  # noqa: E402
    build_tiny_mixtral,
    checkpoint_tensors,
    same_bits,
    tiny_recipe,
    write_corpus,
)  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    return root, build_tiny_mixtral(root / "model"), write_corpus(root / "calibration.txt")


def _quantize(tiny, memory: str):
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quantize import quantize

    root, model_dir, corpus = tiny
    data = tiny_recipe(model_dir, corpus, root / f"work-{memory}")
    data["quantize"].update(device="cuda", memory=memory)
    return quantize(validate_recipe(data))


def test_streamed_checkpoint_equals_the_in_gpu_checkpoint(tiny):
    on_gpu = _quantize(tiny, "gpu")
    streamed = _quantize(tiny, "stream")
    print(f"\n[gpu-stream] gpu: calibration {on_gpu.calibration_s:.2f} s export {on_gpu.export_s:.2f} s "
          f"peak {on_gpu.peak_gpu_mem_gb} GiB; stream: calibration {streamed.calibration_s:.2f} s "
          f"export {streamed.export_s:.2f} s peak {streamed.peak_gpu_mem_gb} GiB, {streamed.streamed}")
    assert streamed.calibration["memory"] == "stream" and streamed.calibration["layerwise"]
    assert on_gpu.calibration["memory"] == "gpu"
    expected, got = checkpoint_tensors(on_gpu.checkpoint_dir), checkpoint_tensors(streamed.checkpoint_dir)
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert same_bits(got[name], tensor), name
    assert {p.device.type for p in streamed.model.parameters()} == {"cpu"}
    layers = streamed.streamed["layers"]
    assert streamed.streamed["loads"] <= 3 * layers  # calibration, export's probe forward, export


def test_streamer_moves_data_and_returns_the_same_cpu_tensors(tiny):
    from transformers import AutoModelForCausalLM

    from orchestrator.stages.layer_stream import LayerStreamer

    _, model_dir, _ = tiny
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    ids = torch.randint(3, 500, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.to("cuda")(ids.cuda()).logits
    model.to("cpu")
    streamer = LayerStreamer(model, "cuda")
    first = streamer.layers[0]
    parameters = list(first.parameters())
    pointers = [p.data_ptr() for p in parameters]
    with streamer.attached():
        assert model.model.embed_tokens.weight.device.type == "cuda"
        assert {p.device.type for p in first.parameters()} == {"cpu"}
        with torch.no_grad():
            logits = model(ids.cuda()).logits
        assert {p.device.type for p in first.parameters()} == {"cuda"}  # window 2, two layers: still there
        assert list(first.parameters()) == parameters
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert [p.data_ptr() for p in first.parameters()] == pointers
    assert torch.equal(logits, expected)
