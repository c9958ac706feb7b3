"""Activation fake quantization: hand-computed cases, the kernel's rounding chain, and modelopt's CPU references."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from orchestrator.emulate.activations import (  # noqa: E402
    fp8_fake_quant,
    nvfp4_block_scales,
    nvfp4_fake_quant,
    round_e2m1_magnitude,
)

AMAX_TO_SCALE = 6.0 * 448.0  # input_scale = calibrated amax / (6 * 448)


def scale_for(amax: float) -> torch.Tensor:
    return torch.tensor(amax / AMAX_TO_SCALE, dtype=torch.float32)


def kernel_chain(a: torch.Tensor) -> torch.Tensor:
    """modelopt's Triton `fp4_round_magnitude`, comparison for comparison."""
    return torch.where(a <= 0.25, 0.0, torch.where(a < 0.75, 0.5, torch.where(a <= 1.25, 1.0, torch.where(
        a < 1.75, 1.5, torch.where(a <= 2.5, 2.0, torch.where(a < 3.5, 3.0, torch.where(a <= 5.0, 4.0, 6.0)))))))


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, 0.0), (0.25, 0.0), (0.2501, 0.5), (0.75, 1.0), (0.7499, 0.5), (1.25, 1.0), (1.75, 2.0),
    (2.5, 2.0), (2.51, 3.0), (3.5, 4.0), (3.49, 3.0), (5.0, 4.0), (5.01, 6.0), (6.0, 6.0), (100.0, 6.0),
])
def test_e2m1_rounding_ties_go_to_the_even_mantissa(value, expected):
    assert float(round_e2m1_magnitude(torch.tensor([value]))[0]) == expected


def test_e2m1_rounding_equals_the_kernel_chain_everywhere():
    midpoints = torch.tensor([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0])
    neighbours = torch.cat([midpoints, torch.nextafter(midpoints, torch.tensor(0.0)),
                            torch.nextafter(midpoints, torch.tensor(9.0))])
    grid = torch.cat([neighbours, torch.linspace(0, 8, 400_001), torch.rand(100_000, generator=torch.Generator()
                                                                              .manual_seed(0)) * 7])
    assert torch.equal(round_e2m1_magnitude(grid), kernel_chain(grid))


def test_e2m1_rounding_matches_the_format_reference():
    import numpy as np

    from orchestrator import nvfp4

    grid = torch.linspace(0, 7, 70_001)
    codes = nvfp4.round_to_e2m1(grid.numpy())
    assert np.array_equal(round_e2m1_magnitude(grid).numpy(), nvfp4.e2m1_table()[codes])


def test_block_with_the_calibrated_amax_uses_scale_one_step():
    # amax 6 * 448 -> global scale 1; a block whose max is 6 gets block scale e4m3(6 / 6) = 1.
    x = torch.tensor([[6.0, 3.0, 1.2, -0.7, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.5, -6.0, -2.4, 0.1, 4.4]])
    expected = [6.0, 3.0, 1.0, -0.5, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, -6.0, -2.0, 0.0, 4.0]
    assert nvfp4_fake_quant(x, torch.tensor(1.0)).tolist() == [expected]


def test_block_scale_is_rounded_to_e4m3():
    # block max 0.9 -> scale 0.15 -> E4M3 0.15625 (1.25 * 2^-3); 0.9 / 0.15625 = 5.76 -> 6 -> 0.9375.
    x = torch.zeros(1, 16)
    x[0, 0], x[0, 1] = 0.9, 0.3  # 0.3 / 0.15625 = 1.92 -> 2 -> 0.3125
    out = nvfp4_fake_quant(x, torch.tensor(1.0))
    assert out[0, 0].item() == 0.9375 and out[0, 1].item() == 0.3125 and out[0, 2:].abs().sum() == 0


def test_values_above_the_calibrated_amax_saturate_at_it():
    # amax 1: block scale capped at 448 * (1 / 2688) = 1/6, so the largest value is 6/6 = 1.
    x = torch.tensor([[2.0, -3.0] + [0.0] * 14])
    out = nvfp4_fake_quant(x, scale_for(1.0))
    assert out[0, :2].tolist() == pytest.approx([1.0, -1.0], rel=1e-6)


def test_zero_block_stays_zero_and_tiny_blocks_flush_like_the_kernel():
    # global scale 1e-6: a block max of 1e-5 gives block scale ~1.6e-6 < 1e-5 -> the kernel uses 1.0,
    # so every value of that block rounds to 0 (modelopt's export-side NVFP4QTensor would keep them).
    x = torch.zeros(2, 16)
    x[1, :4] = torch.tensor([1e-5, -5e-6, 2e-6, 8e-6])
    scale = nvfp4_block_scales(x.abs().view(2, 1, 16).amax(-1, keepdim=True), torch.tensor(1e-6))
    assert scale.flatten().tolist() == [1.0, 1.0]
    assert nvfp4_fake_quant(x, torch.tensor(1e-6)).abs().sum().item() == 0.0


def test_non_positive_global_scale_is_floored():
    x = torch.tensor([[1.0] + [0.0] * 15])
    # global scale 1e-12: the block scale saturates at 448e-12 < 1e-5 -> 1.0 -> 1.0 stays 1.0.
    assert nvfp4_fake_quant(x, torch.tensor(0.0))[0, 0].item() == 1.0


def test_shape_dtype_and_a_partial_last_block():
    x = torch.randn(2, 3, 24, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    out = nvfp4_fake_quant(x, scale_for(4.0))
    assert out.shape == x.shape and out.dtype == torch.bfloat16
    padded = torch.nn.functional.pad(x, (0, 8))  # the kernel reads zeros past the end
    assert torch.equal(out, nvfp4_fake_quant(padded, scale_for(4.0))[..., :24])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("amax_factor", [0.5, 1.0, 1.7])
def test_nvfp4_equals_modelopt_nvfp4qtensor(dtype, amax_factor):
    """modelopt's CPU reference (NVFP4QTensor quantize + dequantize with the same global scale) agrees bit for bit
    wherever no block scale underflows (its scale clamps at 2^-9 where the GPU kernel flushes to 1.0)."""
    nvfp4_tensor = pytest.importorskip("modelopt.torch.quantization.qtensor.nvfp4_tensor")
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(64, 256, generator=generator) * torch.rand(64, 1, generator=generator) * 3).to(dtype)
    x[0, :16] = 0
    scale = scale_for(float(x.float().abs().max()) * amax_factor)
    qtensor, block_scale, global_scale = nvfp4_tensor.NVFP4QTensor.quantize(x.float(), 16,
                                                                              weights_scaling_factor_2=scale)
    reference = qtensor.dequantize(dtype=torch.float32, scale=block_scale, double_scale=global_scale,
                                   block_sizes={-1: 16}).to(dtype)
    assert torch.equal(nvfp4_fake_quant(x, scale), reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_equals_modelopt_eager_reference(dtype):
    tensor_quant = pytest.importorskip("modelopt.torch.quantization.tensor_quant")
    x = (torch.randn(32, 64, generator=torch.Generator().manual_seed(2)) * 5).to(dtype)
    amax = torch.tensor(3.0)
    assert torch.equal(fp8_fake_quant(x, amax / 448.0), tensor_quant.fp8_eager(x, amax))


def test_fp8_hand_cases():
    # amax 1 -> scale 448: 0.3 * 448 = 134.4 -> E4M3 128 -> 128/448; 2 saturates at 448 -> 1.
    out = fp8_fake_quant(torch.tensor([0.3, -2.0, 0.0]), torch.tensor(1.0 / 448.0))
    assert out.tolist() == pytest.approx([128 / 448, -1.0, 0.0], rel=1e-6)
