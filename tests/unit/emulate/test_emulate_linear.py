"""EmulatedLinear: the quantized GEMM's inputs, and the shared input cache's safety."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from orchestrator.emulate import activations  # noqa: E402
from orchestrator.emulate.linear import ActivationQuant, EmulatedLinear, SharedInputCache  # noqa: E402

SCALE = 4.0 / (6 * 448)


def layer(cache=None, **kwargs):
    weight = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    return EmulatedLinear(weight, None, ActivationQuant.nvfp4, SCALE, cache=cache, **kwargs)


@pytest.fixture
def calls(monkeypatch):
    counted = []
    real = activations.nvfp4_fake_quant
    monkeypatch.setattr(activations, "nvfp4_fake_quant", lambda x, s: counted.append(1) or real(x, s))
    return counted


def test_forward_is_linear_of_the_fake_quantized_input():
    lin = layer()
    x = torch.randn(5, 32)
    expected = torch.nn.functional.linear(activations.nvfp4_fake_quant(x, torch.tensor(SCALE)), lin.weight)
    assert torch.equal(lin(x), expected)


def test_siblings_reading_the_same_tensor_quantize_it_once(calls):
    cache = SharedInputCache()
    q, k = layer(cache), layer(cache)
    x = torch.randn(5, 32)
    with torch.no_grad():
        assert torch.equal(q(x), k(x))
    assert len(calls) == 1


def test_an_in_place_change_or_another_scale_misses_the_cache(calls):
    cache = SharedInputCache()
    first = layer(cache)
    other_scale = EmulatedLinear(first.weight.data, None, ActivationQuant.nvfp4, SCALE * 2, cache=cache)
    x = torch.randn(5, 32)
    with torch.no_grad():
        first(x)
        x.mul_(3)
        assert torch.equal(first(x), layer()(x))
        other_scale(x)
    assert len(calls) == 4  # first, first after the change, the uncached reference, the other scale


def test_inference_tensors_are_never_cached(calls):
    cache = SharedInputCache()
    with torch.inference_mode():
        x = torch.randn(5, 32)
        layer(cache)(x)
        layer(cache)(x)
    assert len(calls) == 2


def test_pre_quant_scale_multiplies_before_quantizing():
    pre = torch.linspace(0.5, 2.0, 32)
    lin = layer(pre_quant_scale=pre)
    x = torch.randn(3, 32)
    assert torch.equal(lin.quantize_input(x), activations.nvfp4_fake_quant(x * pre, torch.tensor(SCALE)))


def test_an_expert_without_tokens_gets_an_empty_output():
    assert layer()(torch.zeros(0, 32)).shape == (0, 8)


def test_activation_quantization_needs_a_scale():
    with pytest.raises(ValueError, match="input_scale"):
        EmulatedLinear(torch.zeros(8, 32), None, ActivationQuant.fp8, None)
