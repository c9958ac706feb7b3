"""FP8 KV-cache emulation: key and value states fake-quantized with the exported ``k_scale`` / ``v_scale``.

modelopt's `_QuantAttention` (quantization/plugins/huggingface.py) wraps the
transformers attention function and passes the key and value states, after the rotary
embedding and the cache update, through `k_bmm_quantizer` / `v_bmm_quantizer` (per-tensor
FP8) before attention. The unified export writes their scales as
``<attention>.k_proj.k_scale = k_amax / 448`` and ``<attention>.v_proj.v_scale``. We do the
same through transformers' own extension point: an attention function registered in
`AttentionInterface` (plus the matching mask function) that fake-quantizes key and value
with `fp8_fake_quant` and then calls the function the model used before.
NVFP4 KV caches are not emulated (`install_fp8_kv_cache` is only called for FP8).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

KV_SCALE_SUFFIXES = ("k_scale", "v_scale")
ATTENTION_NAME = "orchestrator_fp8_kv_{inner}"  # one registered name per wrapped implementation


def kv_scales(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """{attention module name: {"k_scale": float, "v_scale": float}} from the checkpoint's tensors."""
    scales: dict[str, dict[str, float]] = {}
    for name, tensor in tensors.items():
        owner, _, suffix = name.rpartition(".")
        if suffix not in KV_SCALE_SUFFIXES:
            continue
        # modelopt hangs k_scale on k_proj and v_scale on v_proj; the attention module is their parent.
        if owner.endswith((".k_proj", ".v_proj")):
            owner = owner.rpartition(".")[0]
        scales.setdefault(owner, {})[suffix] = float(tensor.float())
    return scales


def _inner_attention(module: nn.Module, inner: str):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if inner == "eager":
        return inspect.getmodule(type(module)).eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[inner]


def _make_attention(inner: str):
    def fp8_kv_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: Any, **kwargs: Any):
        import torch

        from orchestrator.emulate.activations import fp8_fake_quant

        scales = getattr(module, "orchestrator_kv_scales", None) or {}
        if "k_scale" in scales:
            key = fp8_fake_quant(key, torch.tensor(scales["k_scale"], dtype=torch.float32, device=key.device))
        if "v_scale" in scales:
            value = fp8_fake_quant(value, torch.tensor(scales["v_scale"], dtype=torch.float32, device=value.device))
        return _inner_attention(module, inner)(module, query, key, value, attention_mask, **kwargs)

    return fp8_kv_attention


def install_fp8_kv_cache(model: nn.Module, scales: dict[str, dict[str, float]]) -> bool:
    """Make `model`'s attention fake-quantize K/V with `scales`; False when this transformers can't be hooked."""
    try:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
        from transformers.modeling_utils import AttentionInterface
    except ImportError:
        return False
    inner = model.config._attn_implementation or "eager"
    if inner not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        return False
    name = ATTENTION_NAME.format(inner=inner)
    AttentionInterface.register(name, _make_attention(inner))
    # Masks are built from the implementation's name; ours needs exactly the inner one's.
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner])
    for module_name, module_scales in scales.items():
        model.get_submodule(module_name).orchestrator_kv_scales = dict(module_scales)
    model.config._attn_implementation = name
    return True
