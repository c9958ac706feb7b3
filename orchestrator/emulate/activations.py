"""Activation fake quantization as nvidia-modelopt 0.47 computes it, in plain torch (CPU or CUDA).

NVFP4 (`nvfp4_fake_quant`) follows modelopt's dynamic block quantizer, the path every
NVFP4 `input_quantizer` takes at inference: `TensorQuantizer._fake_quantize` ->
`dynamic_block_quant` -> `kernels/quantization/gemm/fp4_kernel_hopper.fp4_fake_quant_block`
(the Triton kernel used on SM89+, i.e. Hopper and Blackwell) with the helpers of
`kernels/quantization/common/nvfp4_quant.py`. Step by step, in float32:

1. ``global_scale = amax / (6 * 448)`` — exactly the exported ``input_scale``
   (`NVFP4QTensor.get_activation_scaling_factor` divides the same amax by the same
   constant), so we take ``input_scale`` as is and never rebuild the amax; a scale <= 0
   becomes 1e-12;
2. per block of 16 along the last axis: ``block_amax = max |x|``;
3. block scale ``s = e4m3(min(block_amax / (6 * global_scale), 448)) * global_scale``
   (round to nearest even; no lower clamp, so a tiny block scale underflows to 0);
4. ``s < 1e-5`` (zero blocks, underflow) -> ``s = 1``;
5. ``|x| / s`` rounded to E2M1 with the kernel's comparisons: <=0.25 -> 0, <0.75 -> 0.5,
   <=1.25 -> 1, <1.75 -> 1.5, <=2.5 -> 2, <3.5 -> 3, <=5 -> 4, else 6 (ties to the even
   mantissa: 0.75, 1.75 and 3.5 round up, the others down); sign restored;
6. ``q * s`` cast back to the input dtype.

Known, deliberate differences: the Triton kernel divides with `div.full.f32` (within
2 ulp) where torch divides exactly (IEEE), the same on a CPU and on any GPU. BF16 values
over E4M3 scales land on (or within 2 ulp of) an E2M1 midpoint fairly often (~0.2% of
random BF16 values), and there the approximate quotient can round the other way:
one E2M1 step on those elements (tests/gpu/test_emulation_vs_modelopt.py measures the
effect). GPUs below SM89 use modelopt's CUDA extension (`fused_amax_convert`) instead,
which we do not follow.

FP8 (`fp8_fake_quant`) follows `tensor_quant.scaled_e4m3_impl`: per-tensor
``scale = 448 / amax``, ``e4m3(clamp(x * scale)) * (1 / scale)``, with
``amax = input_scale * 448`` (modelopt exports ``input_scale = amax / 448``; the amax
itself is not in the file, so the scale can be 1 ulp off modelopt's in-memory one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.nvfp4 import BLOCK_SIZE, E2M1_MAX, E4M3_MAX

if TYPE_CHECKING:
    import torch

# Constants of modelopt's Triton kernel (fp4_kernel_hopper.fp4_fake_quant_kernel).
GLOBAL_SCALE_FLOOR = 1e-12  # a zero/negative global scale is replaced by this
BLOCK_SCALE_FLOOR = 1e-5  # block scales below this (zero blocks, E4M3 underflow) become 1.0
# tensor_quant._fp8_eager: an amax at or below this is treated as 1.
FP8_AMAX_EPSILON = 1.0 / (1 << 24)


def round_e2m1_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """Nearest E2M1 magnitude (0, 0.5, 1, 1.5, 2, 3, 4, 6) of non-negative float32 values; saturates at 6.

    E2M1's grid has step 0.5 below 2, 1 below 4, and 2 up to 6; rounding half to even on
    that grid (torch.round) is exactly the kernel's comparison chain (0.25, 1.25, 2.5, 5
    round down; 0.75, 1.75, 3.5 up), and dividing by a power of two is exact. A few
    times faster than searchsorted on a CPU; tests/unit/emulate checks it against the chain.
    """
    import torch

    step = torch.full_like(magnitude, 2.0)
    step.masked_fill_(magnitude < 4.0, 1.0)
    step.masked_fill_(magnitude < 2.0, 0.5)
    return torch.div(magnitude, step).round_().mul_(step).clamp_(max=E2M1_MAX)


def nvfp4_block_scales(blocks_abs_max: torch.Tensor, global_scale: torch.Tensor) -> torch.Tensor:
    """The per-block dequantization scales (float32) modelopt's activation fake quant uses (steps 3-4)."""
    import torch

    global_scale = global_scale.to(device=blocks_abs_max.device, dtype=torch.float32)
    global_scale = torch.where(global_scale > 0, global_scale, torch.full_like(global_scale, GLOBAL_SCALE_FLOOR))
    in_e4m3_range = (blocks_abs_max / (E2M1_MAX * global_scale)).clamp(max=E4M3_MAX)
    scale = in_e4m3_range.to(torch.float8_e4m3fn).to(torch.float32) * global_scale
    return torch.where(scale >= BLOCK_SCALE_FLOOR, scale, torch.ones_like(scale))


def nvfp4_fake_quant(x: torch.Tensor, input_scale: torch.Tensor, block_size: int = BLOCK_SIZE) -> torch.Tensor:
    """NVFP4 fake quantization of activations `x` (any shape, blocks along the last axis) under `input_scale`.

    Returns a tensor of `x`'s shape and dtype. A last axis that is not a multiple of the
    block is padded with zeros, as the Triton kernel's boundary-checked loads do.
    """
    import torch
    import torch.nn.functional as F

    shape, dtype = x.shape, x.dtype
    width = shape[-1]
    rows = x.reshape(-1, width).to(torch.float32)
    pad = (-width) % block_size
    if pad:
        rows = F.pad(rows, (0, pad))
    blocks = rows.view(rows.shape[0], -1, block_size)
    magnitude = blocks.abs()
    scale = nvfp4_block_scales(magnitude.amax(dim=-1, keepdim=True), input_scale)
    rescaled = round_e2m1_magnitude(magnitude / scale) * scale
    # The kernel restores the sign with where(x >= 0, r, -r); copysign is the same but for
    # -0.0 staying -0.0 (equal as a number, so no product or sum can tell).
    signed = torch.copysign(rescaled, blocks)
    return signed.view(rows.shape)[:, :width].reshape(shape).to(dtype)


def fp8_fake_quant(x: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
    """Per-tensor FP8 (E4M3) fake quantization of `x` under the exported `input_scale` (= amax / 448)."""
    import torch

    amax = input_scale.to(device=x.device, dtype=torch.float32) * E4M3_MAX
    amax = torch.where(amax <= FP8_AMAX_EPSILON, torch.ones_like(amax), amax)
    scale = E4M3_MAX / amax
    quantized = (x.to(torch.float32) * scale).clamp(min=-E4M3_MAX, max=E4M3_MAX).to(torch.float8_e4m3fn)
    return (quantized.to(torch.float32) * (1 / scale)).to(x.dtype)
