"""NVFP4 as nvidia-modelopt 0.47 writes it: constants, E2M1/E4M3 tables, pack/unpack, quantize, dequantize.

A reference written from the format facts (../shared/reference/nvfp4.md), not from
modelopt's code, so tests can hold modelopt's output against it:

- a value is a 4-bit E2M1 code (bit 3 = sign) in blocks of ``BLOCK_SIZE`` along the last axis;
- each block has an FP8 E4M3 scale (``weight_scale``), the tensor one FP32 scale (``weight_scale_2``);
- dequantized = e2m1(code) * (float(weight_scale[block]) * weight_scale_2);
- two codes per byte: element 2i in the low nibble, 2i+1 in the high nibble.

Everything works on numpy arrays (numpy only, imported lazily); callers holding torch
tensors pass ``tensor.numpy()`` (float8 tensors as ``tensor.view(torch.uint8).numpy()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BLOCK_SIZE = 16
E2M1_MAX = 6.0
E4M3_MAX = 448.0
# weight_scale is clamped to this range before the cast, so it is never 0 or NaN.
E4M3_SCALE_MIN = 2.0**-9

# Code -> value; bit 3 is the sign, so codes 8..15 mirror 0..7 (code 8 is -0).
E2M1_VALUES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                                  -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
# Rounding midpoints between consecutive magnitudes. A tie at an even-index midpoint
# (0.25, 1.25, 2.5, 5) rounds down, at an odd one (0.75, 1.75, 3.5) up: round half to even.
E2M1_MIDPOINTS: tuple[float, ...] = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
_ODD_MIDPOINTS = (0.75, 1.75, 3.5)

# E4M3 "fn" codes whose value is NaN (S.1111.111); the format has no infinities.
E4M3_NAN_CODES = (0x7F, 0xFF)


def e2m1_table() -> np.ndarray:
    """The 16 E2M1 values as float32, indexed by code."""
    import numpy as np

    return np.array(E2M1_VALUES, dtype=np.float32)


def e4m3_table() -> np.ndarray:
    """The 256 float8_e4m3fn values as float32, indexed by the byte (NaN for 0x7F/0xFF).

    Layout: sign bit, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is subnormal
    (mantissa/8 * 2^-6). The largest finite value is 448.
    """
    import numpy as np

    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent = (codes >> 3) & 0x0F
    mantissa = codes & 0x07
    normal = (1.0 + mantissa / 8.0) * np.exp2(exponent - 7.0)
    subnormal = (mantissa / 8.0) * 2.0**-6
    values = sign * np.where(exponent == 0, subnormal, normal)
    values[list(E4M3_NAN_CODES)] = np.nan
    return values.astype(np.float32)


def e4m3_to_float(codes: np.ndarray) -> np.ndarray:
    """Decode float8_e4m3fn bytes (uint8 array) to float32."""
    import numpy as np

    return e4m3_table()[np.asarray(codes, dtype=np.uint8)]


def float_to_e4m3(values: np.ndarray) -> np.ndarray:
    """Encode float32 values as float8_e4m3fn bytes: round to nearest, ties to even, saturate at 448.

    Only for finite inputs (scales are clamped before the cast, so NaN never reaches it).
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float32)
    table = e4m3_table()
    positive = table[:0x7F].astype(np.float64)  # codes 0x00..0x7E: 0 .. 448, increasing
    magnitude = np.minimum(np.abs(values).astype(np.float64), E4M3_MAX)
    upper = np.clip(np.searchsorted(positive, magnitude, side="left"), 1, len(positive) - 1)
    lower = upper - 1
    below, above = magnitude - positive[lower], positive[upper] - magnitude
    # The even code of a pair is the one with mantissa LSB 0: ties go there.
    pick_upper = (above < below) | ((above == below) & (upper % 2 == 0))
    code = np.where(pick_upper, upper, lower).astype(np.uint8)
    code = np.where(magnitude == 0, 0, code).astype(np.uint8)
    return code | np.where(np.signbit(values), 0x80, 0).astype(np.uint8)


def pack(codes: np.ndarray) -> np.ndarray:
    """Pack 4-bit codes (uint8 in 0..15, last dim even) into bytes: 2i -> low nibble, 2i+1 -> high."""
    import numpy as np

    codes = np.asarray(codes, dtype=np.uint8)
    if codes.shape[-1] % 2:
        raise ValueError(f"last dimension {codes.shape[-1]} is odd; NVFP4 packs pairs of values")
    return (codes[..., 0::2] & 0x0F) | ((codes[..., 1::2] & 0x0F) << 4)


def unpack(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack`: bytes [..., n] -> codes [..., 2n]."""
    import numpy as np

    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    codes[..., 0::2] = packed & 0x0F
    codes[..., 1::2] = packed >> 4
    return codes


def round_to_e2m1(scaled: np.ndarray) -> np.ndarray:
    """Nearest E2M1 code of each value (already divided by its scales); saturates at +-6."""
    import numpy as np

    scaled = np.asarray(scaled, dtype=np.float32)
    magnitude = np.abs(scaled)
    midpoints = np.array(E2M1_MIDPOINTS, dtype=np.float32)
    index = np.searchsorted(midpoints, magnitude, side="left").astype(np.uint8)
    index += np.isin(magnitude, np.array(_ODD_MIDPOINTS, dtype=np.float32)).astype(np.uint8)
    return index | (np.signbit(scaled).astype(np.uint8) << 3)


def global_scale(weight: np.ndarray) -> np.float32:
    """weight_scale_2 = amax(|W|) / (6 * 448), in float32."""
    import numpy as np

    amax = np.max(np.abs(np.asarray(weight, dtype=np.float32)))
    return np.float32(amax / np.float32(E2M1_MAX * E4M3_MAX))


def block_scales(weight: np.ndarray, weight_scale_2: float, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """weight_scale as E4M3 bytes [..., in/block]: block amax / 6 / weight_scale_2, clamped to [2^-9, 448]."""
    import numpy as np

    weight = np.asarray(weight, dtype=np.float32)
    blocks = weight.reshape(*weight.shape[:-1], -1, block_size)
    amax = np.max(np.abs(blocks), axis=-1)
    scale = amax / (np.float32(E2M1_MAX) * np.float32(weight_scale_2))
    scale = np.where(scale == 0, np.float32(1.0), scale)  # an all-zero block keeps scale 1
    return float_to_e4m3(np.clip(scale, E4M3_SCALE_MIN, E4M3_MAX))


def quantize(weight: np.ndarray, block_size: int = BLOCK_SIZE,
             weight_scale_2: float | None = None) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Quantize a float weight [..., in] to (packed uint8 [..., in/2], weight_scale E4M3 bytes, weight_scale_2)."""
    import numpy as np

    weight = np.asarray(weight, dtype=np.float32)
    if weight.shape[-1] % block_size:
        raise ValueError(f"last dimension {weight.shape[-1]} is not a multiple of the block size {block_size}")
    scale_2 = global_scale(weight) if weight_scale_2 is None else np.float32(weight_scale_2)
    scales = block_scales(weight, scale_2, block_size)
    per_block = e4m3_to_float(scales) * scale_2
    blocks = weight.reshape(*weight.shape[:-1], -1, block_size)
    scaled = (blocks / per_block[..., None]).reshape(weight.shape)
    return pack(round_to_e2m1(scaled)), scales, scale_2


def dequantize(packed: np.ndarray, weight_scale: np.ndarray, weight_scale_2: float | np.ndarray,
               block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Float32 weight [..., 2n] from packed codes [..., n], E4M3 scale bytes [..., 2n/block] and the FP32 scale.

    ``weight_scale_2`` is a scalar, or one value per leading index (TRT-LLM stacks MoE experts
    with one global scale each: shape [E] for a weight [E, out, in/2]).
    """
    import numpy as np

    values = e2m1_table()[unpack(packed)]
    scale_2 = np.asarray(weight_scale_2, dtype=np.float32)
    scale_2 = scale_2.reshape(scale_2.shape + (1,) * (np.ndim(weight_scale) - scale_2.ndim))
    per_block = e4m3_to_float(weight_scale) * scale_2
    if values.shape[-1] != per_block.shape[-1] * block_size:
        raise ValueError(f"{values.shape[-1]} values but {per_block.shape[-1]} scales of block {block_size}")
    blocks = values.reshape(*values.shape[:-1], -1, block_size) * per_block[..., None]
    return blocks.reshape(values.shape)
