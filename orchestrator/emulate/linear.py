"""`EmulatedLinear`: a quantized linear of an exported checkpoint, computed the way modelopt's fake quant does.

modelopt's quantized linear computes ``F.linear(input_quantizer(x), weight_quantizer(W), b)``
in the model's dtype; the weight it fake-quantizes is exactly what the export stores, so
here the weight is the exported one dequantized once (by the caller) and the input goes
through `orchestrator.emulate.activations` on every call.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn


class ActivationQuant(str, Enum):
    none = "none"  # weight-only formats (no input_scale exported)
    nvfp4 = "nvfp4"
    fp8 = "fp8"


class SharedInputCache:
    """The last quantized input, shared by a model's emulated linears.

    q/k/v projections, and an expert's w1/w3, read the same tensor with the same
    input_scale (modelopt's export unifies the scales of such groups); quantizing it once
    saves about a third of the emulation's cost. A hit needs the very same tensor object,
    unchanged since (its version counter; tensors made under inference_mode have none and
    are never cached), and the same quantization.
    """

    def __init__(self) -> None:
        self.entry: tuple[torch.Tensor, int, tuple, torch.Tensor] | None = None

    def get(self, x: torch.Tensor, key: tuple) -> torch.Tensor | None:
        if self.entry is None:
            return None
        cached, version, cached_key, out = self.entry
        if cached is x and cached_key == key and _version(x) == version:
            return out
        return None

    def put(self, x: torch.Tensor, key: tuple, out: torch.Tensor) -> None:
        version = _version(x)
        self.entry = (x, version, key, out) if version is not None else None


def _version(x: torch.Tensor) -> int | None:
    try:
        return x._version
    except RuntimeError:  # inference tensors track no version
        return None


class EmulatedLinear(nn.Module):
    """``y = linear(fake_quant(x * pre_quant_scale), W_dequantized, bias)``.

    The scales are kept as Python floats (exact copies of the exported float32 values):
    as buffers, `model.to(torch.bfloat16)` would round them.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: ActivationQuant,
                 input_scale: float | None, pre_quant_scale: torch.Tensor | None = None, fmt: str = "",
                 cache: SharedInputCache | None = None):
        super().__init__()
        if activation is not ActivationQuant.none and input_scale is None:
            raise ValueError(f"{activation.value} activation quantization needs an input_scale")
        self.out_features, self.in_features = weight.shape
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.activation = activation
        self.input_scale = input_scale
        self.format = fmt
        self.cache = cache
        if pre_quant_scale is not None:
            self.register_buffer("pre_quant_scale", pre_quant_scale)
        else:
            self.pre_quant_scale = None

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The activation as the quantized GEMM sees it (fake-quantized, in `x`'s dtype)."""
        from orchestrator.emulate.activations import fp8_fake_quant, nvfp4_fake_quant

        if self.pre_quant_scale is not None:
            x = x * self.pre_quant_scale.to(x.dtype)
        if self.activation is ActivationQuant.none:
            return x
        key = (self.activation, self.input_scale)
        if self.cache is not None and self.pre_quant_scale is None:
            hit = self.cache.get(x, key)
            if hit is not None:
                return hit
        scale = torch.tensor(self.input_scale, dtype=torch.float32, device=x.device)
        quantize = nvfp4_fake_quant if self.activation is ActivationQuant.nvfp4 else fp8_fake_quant
        out = quantize(x, scale)
        if self.cache is not None and self.pre_quant_scale is None:
            self.cache.put(x, key, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:  # an expert no token was routed to (modelopt returns such inputs untouched)
            return torch.nn.functional.linear(x, self.weight, self.bias)
        return torch.nn.functional.linear(self.quantize_input(x), self.weight, self.bias)

    def extra_repr(self) -> str:
        scale = f", input_scale={self.input_scale:.6g}" if self.input_scale is not None else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"format={self.format}, activations={self.activation.value}{scale}")
