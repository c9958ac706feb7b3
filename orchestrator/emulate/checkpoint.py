"""Build a runnable model from an exported unified-HF checkpoint (`export_hf_checkpoint`), quantized layers emulated.

The architecture comes from the checkpoint's config.json through transformers; the
unquantized tensors (embeddings, norms, routers, lm_head) load as they are; every module
with a ``weight_scale`` becomes an `EmulatedLinear`:

- NVFP4 (U8 weight): W = e2m1(code) * e4m3(weight_scale[block]) * weight_scale_2, through
  `orchestrator.nvfp4.dequantize`; inputs NVFP4-fake-quantized under ``input_scale``
  (weight-only W4A16 when the checkpoint has no ``input_scale``);
- FP8 (F8_E4M3 weight): W = fp8 * weight_scale; inputs FP8-fake-quantized under ``input_scale``;
- ``pre_quant_scale`` (AWQ) multiplies the input first, as modelopt's input quantizer does.

An FP8 KV cache (``k_scale``/``v_scale``) is emulated too (`orchestrator.emulate.kv_cache`);
an NVFP4 one is not (reported as ``kv_cache_emulated: false``, then ignored).
Mixtral experts are addressed as ``block_sparse_moe.experts.E.w1|w2|w3``, which
transformers 4.57 keeps as separate nn.Linear modules; transformers 5 fuses them and is
refused with a clear message.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

SCALE_SUFFIXES = ("weight_scale", "weight_scale_2", "input_scale", "pre_quant_scale")
KV_CACHE_SUFFIXES = ("k_scale", "v_scale")
# quant_algo values whose layers this module can emulate (per layer, the tensor dtypes decide).
SUPPORTED_ALGOS = frozenset({None, "NVFP4", "NVFP4_AWQ", "W4A16_NVFP4", "FP8", "MIXED_PRECISION"})


@dataclass
class QuantInfo:
    """What the checkpoint says about its quantization (hf_quant_config.json, else config.json)."""

    quant_algo: str | None
    kv_cache_quant_algo: str | None
    group_size: int
    exclude_modules: list[str] = field(default_factory=list)


@dataclass
class EmulationReport:
    """What `load_emulated_model` did, for the eval record."""

    checkpoint: str
    quant_algo: str | None
    kv_cache_quant_algo: str | None
    kv_cache_emulated: bool
    dtype: str
    device: str
    layers: dict[str, int]  # "<weights>/<activations>" -> count, e.g. {"nvfp4/nvfp4": 96}
    unquantized_linears: int

    @property
    def quantized_layers(self) -> int:
        return sum(self.layers.values())


def read_quant_info(checkpoint: Path) -> QuantInfo:
    """The quantization summary of an exported checkpoint directory."""
    hf_quant = checkpoint / "hf_quant_config.json"
    if hf_quant.is_file():
        section = json.loads(hf_quant.read_text()).get("quantization", {})
    else:
        config = json.loads((checkpoint / "config.json").read_text())
        section = config.get("quantization_config") or {}
    return QuantInfo(quant_algo=section.get("quant_algo"), kv_cache_quant_algo=section.get("kv_cache_quant_algo"),
                     group_size=int(section.get("group_size") or 16),
                     exclude_modules=list(section.get("exclude_modules") or section.get("ignore") or []))


def read_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's safetensors files, on the CPU, by name."""
    from safetensors import safe_open

    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({checkpoint / name for name in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise UserError(f"{checkpoint}: no *.safetensors files", hint="run `orchestrator quantize RECIPE` first")
    tensors: dict[str, Any] = {}
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[name] = handle.get_tensor(name)
    return tensors


def dequantize_weight(name: str, tensors: dict[str, torch.Tensor], group_size: int) -> tuple[torch.Tensor, str]:
    """The float32 weight of quantized module `name` and its weight format ("nvfp4" or "fp8")."""
    import torch

    from orchestrator import nvfp4

    weight = tensors[f"{name}.weight"]
    scale = tensors[f"{name}.weight_scale"]
    if weight.dtype == torch.uint8:
        scale_2 = tensors.get(f"{name}.weight_scale_2")
        if scale_2 is None or scale.dtype != torch.float8_e4m3fn:
            raise UserError(f"{name}: a U8 (NVFP4) weight needs an F8_E4M3 weight_scale and an F32 weight_scale_2",
                            hint="the checkpoint is not one modelopt's export_hf_checkpoint wrote; re-run quantize")
        values = nvfp4.dequantize(weight.numpy(), scale.view(torch.uint8).numpy(), scale_2.float().numpy(),
                                  block_size=group_size)
        return torch.from_numpy(values), "nvfp4"
    if weight.dtype == torch.float8_e4m3fn:
        scale = scale.float()
        if scale.numel() > 1:  # per output channel
            scale = scale.reshape(-1, 1)
        return weight.float() * scale, "fp8"
    raise UserError(f"{name}.weight: dtype {weight.dtype} with a weight_scale is not a format the emulator knows",
                    hint="supported: NVFP4 (U8 weight) and FP8 (F8_E4M3 weight)")


def quantized_module_names(tensors: dict[str, Any]) -> list[str]:
    """Modules that carry a `weight_scale` (the quantized linears), in checkpoint order."""
    return sorted(name[: -len(".weight_scale")] for name in tensors if name.endswith(".weight_scale"))


def _is_scale(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in SCALE_SUFFIXES + KV_CACHE_SUFFIXES


def build_model(checkpoint: Path, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The checkpoint's architecture (transformers, from its config.json), weights left uninitialized."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_utils import no_init_weights

    config = AutoConfig.from_pretrained(checkpoint)
    if hasattr(config, "quantization_config"):
        # Describes the files, not the module types we build; transformers would try to apply it.
        del config.quantization_config
    import torch

    with torch.device(device), no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, attr)
    except AttributeError:
        import transformers

        raise UserError(
            f"{name}: the checkpoint quantizes this module, but transformers {transformers.__version__}'s "
            f"{type(model).__name__} has no such submodule",
            hint="MoE experts must be separate modules (experts.E.w1/w2/w3): use transformers 4.57.x "
            "(pip install 'transformers>=4.57,<4.58')",
        ) from None
    setattr(parent, attr, new)
    return old


def _emulate_linear(model: nn.Module, name: str, tensors: dict[str, torch.Tensor], group_size: int,
                    dtype: torch.dtype, device: torch.device, cache) -> str:
    """Replace the nn.Linear `name` by its EmulatedLinear; returns "<weights>/<activations>" for the report."""
    from torch import nn

    from orchestrator.emulate.linear import ActivationQuant, EmulatedLinear

    weight, weight_format = dequantize_weight(name, tensors, group_size)
    input_scale = tensors.get(f"{name}.input_scale")
    activation = ActivationQuant.none if input_scale is None else ActivationQuant(weight_format)
    pre_quant_scale = tensors.get(f"{name}.pre_quant_scale")
    try:
        old = model.get_submodule(name)
    except AttributeError:
        old = None  # _replace_module explains
    if old is not None and not isinstance(old, nn.Linear):
        raise UserError(f"{name}: quantized in the checkpoint but a {type(old).__name__} in the model, not an nn.Linear")
    if old is not None and tuple(old.weight.shape) != tuple(weight.shape):
        raise UserError(f"{name}: dequantized weight {tuple(weight.shape)} does not fit the model's "
                        f"{tuple(old.weight.shape)}")
    emulated = EmulatedLinear(
        weight.to(device=device, dtype=dtype), old.bias if old is not None else None, activation,
        None if input_scale is None else float(input_scale.float()),
        None if pre_quant_scale is None else pre_quant_scale.to(device=device, dtype=dtype),
        fmt=weight_format, cache=cache,
    )
    _replace_module(model, name, emulated)
    return f"{weight_format}/{activation.value}"


def load_emulated_model(checkpoint: Path, dtype: torch.dtype, device: str | torch.device = "cpu",
                        kv_cache: bool = True) -> tuple[nn.Module, EmulationReport]:
    """The exported checkpoint at `checkpoint` as a runnable causal LM whose quantized linears are emulated.

    `dtype` is the compute dtype (activations, dequantized weights, unquantized tensors);
    use the model's own dtype (bfloat16) to reproduce modelopt's fake-quant forward.
    `kv_cache=False` leaves an FP8 KV cache unquantized.
    """
    import torch
    from torch import nn

    from orchestrator.emulate.linear import SharedInputCache

    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise UserError(f"{checkpoint}: no config.json (not an exported checkpoint)",
                        hint="run `orchestrator quantize RECIPE` first")
    info = read_quant_info(checkpoint)
    if info.quant_algo not in SUPPORTED_ALGOS:
        raise UserError(f"{checkpoint}: quant_algo {info.quant_algo} cannot be emulated",
                        hint=f"supported: {', '.join(sorted(a for a in SUPPORTED_ALGOS if a))}")
    device = torch.device(device)
    tensors = read_tensors(checkpoint)
    quantized = quantized_module_names(tensors)
    quantized_weights = {f"{name}.weight" for name in quantized}
    plain = {k: v for k, v in tensors.items() if k not in quantized_weights and not _is_scale(k)}

    model = build_model(checkpoint, dtype, device)
    missing, unexpected = model.load_state_dict(plain, strict=False)
    if unexpected:
        raise UserError(f"{checkpoint}: {len(unexpected)} tensors the model has no place for, e.g. {unexpected[:3]}",
                        hint="the checkpoint's config.json does not match its tensors")
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in missing if k not in quantized_weights and not (tied and k == "lm_head.weight")]
    if missing:
        raise UserError(f"{checkpoint}: {len(missing)} tensors missing, e.g. {missing[:3]}",
                        hint="the export is incomplete; re-run `orchestrator quantize RECIPE --force`")
    if tied:
        model.tie_weights()

    layers: Counter[str] = Counter()
    cache = SharedInputCache()  # one per model: q/k/v and w1/w3 share their quantized input
    for name in quantized:
        layers[_emulate_linear(model, name, tensors, info.group_size, dtype, device, cache)] += 1
    kv_emulated = False
    if kv_cache and info.kv_cache_quant_algo == "FP8":
        from orchestrator.emulate.kv_cache import install_fp8_kv_cache, kv_scales

        scales = kv_scales(tensors)
        kv_emulated = bool(scales) and install_fp8_kv_cache(model, scales)
    unquantized = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    report = EmulationReport(
        checkpoint=str(checkpoint), quant_algo=info.quant_algo, kv_cache_quant_algo=info.kv_cache_quant_algo,
        kv_cache_emulated=kv_emulated, dtype=str(dtype).removeprefix("torch."), device=str(device), layers=dict(layers),
        unquantized_linears=unquantized,
    )
    return model, report
