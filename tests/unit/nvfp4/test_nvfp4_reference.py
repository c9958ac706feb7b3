"""orchestrator.nvfp4 against the format facts and against modelopt's own NVFP4QTensor."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import nvfp4


def test_e2m1_table_is_the_format():
    assert nvfp4.e2m1_table().tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]
    assert np.signbit(nvfp4.e2m1_table()[8])  # code 8 is -0


def test_pack_puts_even_elements_in_the_low_nibble():
    codes = np.array([[0x1, 0xF, 0x7, 0x8]], dtype=np.uint8)
    assert nvfp4.pack(codes).tolist() == [[0xF1, 0x87]]
    assert nvfp4.unpack(nvfp4.pack(codes)).tolist() == codes.tolist()


def test_unpack_then_pack_is_identity_on_every_byte():
    every = np.arange(256, dtype=np.uint8).reshape(4, 64)
    assert np.array_equal(nvfp4.pack(nvfp4.unpack(every)), every)


@pytest.mark.parametrize(("value", "code"), [
    (0.25, 0), (0.26, 1), (0.75, 2), (1.25, 2), (1.75, 4), (2.5, 4), (3.5, 6), (5.0, 6), (5.01, 7), (100.0, 7),
    (-0.75, 0x8 | 2), (-3.5, 0x8 | 6),
])
def test_rounding_ties_go_to_the_even_mantissa(value, code):
    assert int(nvfp4.round_to_e2m1(np.array([value]))[0]) == code


def test_e4m3_table_matches_torch_float8():
    torch = pytest.importorskip("torch")
    every = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy()
    ours = nvfp4.e4m3_table()
    assert np.array_equal(np.isnan(ours), np.isnan(every))
    assert np.array_equal(ours[~np.isnan(ours)], every[~np.isnan(every)])
    assert ours[0x7E] == 448.0


def test_float_to_e4m3_rounds_like_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(2**-9, 448, 20000), np.exp2(rng.uniform(-9, 8.8, 20000)),
                             nvfp4.e4m3_table()[1:0x7F]]).astype(np.float32)
    values = np.concatenate([values, -values])
    theirs = torch.from_numpy(values).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert np.array_equal(nvfp4.float_to_e4m3(values), theirs)


def test_quantize_dequantize_round_trip_is_close():
    rng = np.random.default_rng(1)
    weight = rng.normal(0, 0.02, (64, 128)).astype(np.float32)
    packed, scales, scale_2 = nvfp4.quantize(weight)
    assert packed.shape == (64, 64) and packed.dtype == np.uint8 and scales.shape == (64, 8)
    restored = nvfp4.dequantize(packed, scales, scale_2)
    # E2M1 keeps ~1 significant bit: the error of a value is at most half a step of its block's grid.
    assert np.max(np.abs(restored - weight)) <= np.max(np.abs(weight)) / 6
    assert np.corrcoef(restored.ravel(), weight.ravel())[0, 1] > 0.98


def test_dequantize_takes_one_global_scale_per_stacked_expert():
    packed = np.full((2, 4, 8), 0x22, dtype=np.uint8)  # every value code 2 = 1.0
    scales = nvfp4.float_to_e4m3(np.ones((2, 4, 1), dtype=np.float32))
    out = nvfp4.dequantize(packed, scales, np.array([1.0, 3.0], dtype=np.float32))
    assert np.all(out[0] == 1.0) and np.all(out[1] == 3.0)


# --- against modelopt 0.47 (the producer of the checkpoints we verify) ---

@pytest.fixture(scope="module")
def modelopt_nvfp4():
    pytest.importorskip("modelopt.torch.quantization")
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    return NVFP4QTensor


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packing_is_bit_exact_with_modelopt(modelopt_nvfp4, seed, dtype):
    import torch

    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(96, 256, generator=generator) * torch.rand(96, 1, generator=generator)).to(getattr(torch, dtype))
    weight[3, :16] = 0  # an all-zero block keeps scale 1
    qtensor, scale, scale_2 = modelopt_nvfp4.quantize(weight.clone(), 16)
    packed, ours_scale, ours_scale_2 = nvfp4.quantize(weight.float().numpy())
    assert np.float32(scale_2.item()) == ours_scale_2
    assert np.array_equal(ours_scale, scale.view(torch.uint8).numpy())
    assert np.array_equal(packed, qtensor._quantized_data.numpy())
    assert np.array_equal(nvfp4.unpack(packed), nvfp4.unpack(qtensor._quantized_data.numpy()))


@pytest.mark.parametrize("seed", [0, 1])
def test_dequantize_equals_modelopt_within_fp32_rounding(modelopt_nvfp4, seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(64, 512, generator=generator) * 0.05
    qtensor, scale, scale_2 = modelopt_nvfp4.quantize(weight.clone(), 16)
    theirs = qtensor.dequantize(dtype=torch.float32, scale=scale, double_scale=scale_2, block_sizes={-1: 16}).numpy()
    ours = nvfp4.dequantize(qtensor._quantized_data.numpy(), scale.view(torch.uint8).numpy(), scale_2.item())
    np.testing.assert_allclose(ours, theirs, rtol=2**-23, atol=0)
