"""Where the weights live during quantize: the `auto` choice, the layerwise switch, and LayerStreamer's bookkeeping.

Here LayerStreamer's device is the CPU itself, so nothing moves: these tests hold its
policy (which layers are resident, how often each is loaded, what export may replace).
The data swap itself (GPU copies in, the very CPU tensors back) is tested on CUDA in
tests/gpu/test_quantize_stream.py.
"""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.stages.quantize import (
    GPU_FIT_FRACTION,
    check_fits_ranks,
    choose_memory,
    placement_after_ranks,
)

GIB = 2**30


@pytest.mark.parametrize(("requested", "device", "weights", "free", "expected"), [
    ("auto", "cuda", 12 * GIB, 78 * GIB, "gpu"),
    ("auto", "cuda", 87 * GIB, 78 * GIB, "stream"),  # Mixtral-8x7B BF16 on one H100
    ("auto", "cuda", int(GPU_FIT_FRACTION * 78 * GIB), 78 * GIB, "gpu"),
    ("auto", "cuda", int(GPU_FIT_FRACTION * 78 * GIB) + 1, 78 * GIB, "stream"),
    ("offload", "cuda", 87 * GIB, 78 * GIB, "offload"),
    ("gpu", "cuda", 87 * GIB, 78 * GIB, "gpu"),  # asked for: the user gets it (and the OOM)
    ("stream", "cuda", 1 * GIB, 78 * GIB, "stream"),
    ("layerwise", "cuda", 1 * GIB, 78 * GIB, "layerwise"),
    ("auto", "cpu", 87 * GIB, 0, "cpu"),
    ("stream", "cpu", 1 * GIB, 0, "cpu"),
])
def test_choose_memory(requested, device, weights, free, expected):
    assert choose_memory(requested, device, weights, free) == expected


def test_several_gpus_with_fsdp2_always_calibrate_as_ranks_and_cpu_never_does():
    assert choose_memory("auto", "cuda", 87 * GIB, 156 * GIB, sharded=True) == "fsdp2"
    assert choose_memory("gpu", "cuda", 1 * GIB, 156 * GIB, sharded=True) == "fsdp2"
    assert choose_memory("auto", "cpu", 1 * GIB, 0, sharded=True) == "cpu"


@pytest.mark.parametrize(("weights", "free", "expected"), [
    (12 * GIB, [78 * GIB, 78 * GIB], "gpu"),  # GPU 0 holds it
    (82 * GIB, [78 * GIB, 78 * GIB], "layers"),  # the 30-layer run of docs/PERFORMANCE.md
    (87 * GIB, [78 * GIB, 78 * GIB, 78 * GIB], "layers"),
    (130 * GIB, [78 * GIB, 78 * GIB], "stream"),  # not even together: CPU memory
])
def test_after_the_ranks_one_process_places_the_model_where_it_fits(weights, free, expected):
    assert placement_after_ranks(weights, free) == expected


def test_fsdp2_refuses_up_front_a_model_the_gpus_cannot_hold_together():
    check_fits_ranks(82 * GIB, [80 * GIB, 80 * GIB])  # the 30-layer run of docs/PERFORMANCE.md
    with pytest.raises(UserError, match="quantize.gpus=2: the model's 263.0 GiB") as refused:
        check_fits_ranks(263 * GIB, [80 * GIB, 80 * GIB])  # Mixtral-8x22B on 2 H100
    assert "quantize.memory: stream" in refused.value.hint


def test_with_layerwise_turns_layerwise_on_without_touching_the_input():
    from orchestrator.stages.layer_stream import with_layerwise

    config = {"quant_cfg": [{"quantizer_name": "*", "enable": False}], "algorithm": "max"}
    streamed = with_layerwise(config)
    assert streamed["algorithm"] == {"method": "max", "layerwise": {"enable": True}}
    assert config["algorithm"] == "max"
    assert streamed["quant_cfg"] is config["quant_cfg"]
    resumable = {"quant_cfg": [], "algorithm": {"method": "max", "layerwise": {"enable": True, "checkpoint_dir": "d"}}}
    assert with_layerwise(resumable) is resumable
    assert with_layerwise(None) is None


def test_effective_config_only_changes_for_stream():
    from orchestrator.stages.quantize import effective_config

    config = {"quant_cfg": [], "algorithm": "max"}
    assert effective_config(config, "gpu") is config
    assert effective_config(config, "offload") is config
    assert effective_config(config, "stream")["algorithm"]["layerwise"]["enable"] is True


@pytest.fixture(scope="module")
def tiny_model():
    """A 4-layer Mixtral small enough to build in a blink (no file, no tokenizer)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("modelopt.torch.quantization")
    torch.manual_seed(0)
    config = transformers.MixtralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=2,
                                        num_experts_per_tok=1, max_position_embeddings=64)
    return transformers.MixtralForCausalLM(config).eval()


def test_streamer_keeps_a_window_and_follows_the_layerwise_order(tiny_model):
    from orchestrator.stages.layer_stream import LayerStreamer

    streamer = LayerStreamer(tiny_model, "cpu", window=2)
    # modelopt's layerwise step k: run k (capturing k+1's inputs), capture k+1, calibrate k (replays k).
    for k in range(4):
        for index in (k, k + 1, k):
            if index < 4:
                streamer._before_layer(index)
                assert len(streamer._resident) <= 2
    assert streamer.loads == 4  # every layer crossed once
    assert list(streamer._resident) == [2, 3]  # the last two, the one used last at the end


def test_attached_streamer_runs_a_forward_and_leaves_the_model_on_the_cpu(tiny_model):
    import torch

    from orchestrator.stages.layer_stream import LayerStreamer

    ids = torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        expected = tiny_model(ids).logits
    streamer = LayerStreamer(tiny_model, "cpu", window=2)
    with streamer.attached():
        with torch.no_grad():
            logits = tiny_model(ids).logits
        assert len(streamer._resident) == 2
    assert torch.equal(logits, expected)
    assert streamer.loads == 4 and not streamer._resident and not streamer._hooks
    assert {p.device.type for p in tiny_model.parameters()} == {"cpu"}


def test_materialized_gives_back_the_original_parameters(tiny_model):
    import torch

    from orchestrator.stages.layer_stream import LayerStreamer

    streamer = LayerStreamer(tiny_model, "cpu")
    projection = streamer.layers[1].self_attn.q_proj
    original = projection.weight
    with streamer.materialized(1):
        assert 1 in streamer._resident
        projection.weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.uint8), requires_grad=False)  # "packed"
        projection.register_buffer("weight_scale", torch.ones(1))
    assert projection.weight is original and original.device.type == "cpu"
    assert "weight_scale" not in projection._buffers
    assert 1 not in streamer._resident


def test_streamed_export_restores_modelopts_functions(tiny_model):
    from modelopt.torch.export import unified_export_hf
    from modelopt.torch.quantization.utils import core_utils

    from orchestrator.stages.layer_stream import LayerStreamer, streamed_export

    offloaded, access = unified_export_hf.has_accelerate_offload, core_utils.enable_weight_access_and_writeback
    streamer = LayerStreamer(tiny_model, "cpu")
    with pytest.raises(RuntimeError), streamed_export(tiny_model, streamer):
        assert unified_export_hf.has_accelerate_offload(tiny_model) is True
        assert unified_export_hf.has_accelerate_offload(streamer.layers[0]) is False
        with core_utils.enable_weight_access_and_writeback(streamer.layers[2], tiny_model):
            assert 2 in streamer._resident
        assert 2 not in streamer._resident
        raise RuntimeError("export failed")
    assert unified_export_hf.has_accelerate_offload is offloaded
    assert core_utils.enable_weight_access_and_writeback is access
