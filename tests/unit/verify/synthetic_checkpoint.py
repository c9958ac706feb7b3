"""Small NVFP4 checkpoints written byte by byte (numpy only), shaped like modelopt 0.47's exports.

One decoder layer of a Mixtral-like model (hidden 32, 2 heads of 16, 1 KV head, 2 experts,
ffn 64, vocab 40), in the unified HF layout and in the TRT-LLM layout; the tests corrupt them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from orchestrator import nvfp4

DIMS = {"hidden": 32, "heads": 2, "kv_heads": 1, "head_dim": 16, "ffn": 64, "experts": 2, "vocab": 40}
HF_CONFIG = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 32, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 64, "num_local_experts": 2,
    "num_experts_per_tok": 2, "num_hidden_layers": 1, "vocab_size": 40, "torch_dtype": "bfloat16",
}
HF_EXCLUDE = ["lm_head", "model.embed_tokens", "model.layers.0.block_sparse_moe.gate"]


def bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), truncating."""
    return (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


class Raw:
    """A tensor as the bytes safetensors stores, with its dtype tag."""

    def __init__(self, dtype: str, array: np.ndarray):
        self.dtype, self.array = dtype, np.asarray(array).copy(order="C")  # keeps 0-d scalars 0-d


def write_safetensors(path: Path, tensors: dict[str, Raw]) -> None:
    header, blobs, offset = {}, [], 0
    for name, raw in tensors.items():
        data = raw.array.astype(raw.array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": raw.dtype, "shape": list(raw.array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def read_safetensors(path: Path) -> dict[str, Raw]:
    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    file = SafetensorsFile(path)
    return {name: Raw(info.dtype, file.read(name)) for name, info in file.tensors.items()}


def _nvfp4_linear(rng, prefix: str, out: int, inp: int, names=("weight_scale", "weight_scale_2", "input_scale"),
                  experts: int | None = None) -> dict[str, Raw]:
    shape = (experts, out, inp) if experts else (out, inp)
    weight = rng.normal(0, 0.05, shape).astype(np.float32)
    if experts:
        parts = [nvfp4.quantize(w) for w in weight]
        packed = np.stack([p[0] for p in parts])
        scales = np.stack([p[1] for p in parts])
        scale_2 = np.array([p[2] for p in parts], dtype=np.float32)
        activation = np.array([0.01], dtype=np.float32)
    else:
        packed, scales, scale_2 = nvfp4.quantize(weight)
        scale_2 = np.array(scale_2, dtype=np.float32)
        activation = np.array(0.01, dtype=np.float32)
    return {f"{prefix}.weight": Raw("U8", packed), f"{prefix}.{names[0]}": Raw("F8_E4M3", scales),
            f"{prefix}.{names[1]}": Raw("F32", scale_2), f"{prefix}.{names[2]}": Raw("F32", activation)}


def _bf16(rng, *shape) -> Raw:
    return Raw("BF16", bf16(rng.normal(0, 0.05, shape)))


def hf_tensors(seed: int = 0) -> dict[str, Raw]:
    rng = np.random.default_rng(seed)
    d = DIMS
    q_out, kv_out = d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"]
    layer = "model.layers.0"
    tensors = {"model.embed_tokens.weight": _bf16(rng, d["vocab"], d["hidden"]),
               f"{layer}.input_layernorm.weight": _bf16(rng, d["hidden"]),
               f"{layer}.post_attention_layernorm.weight": _bf16(rng, d["hidden"]),
               f"{layer}.block_sparse_moe.gate.weight": _bf16(rng, d["experts"], d["hidden"]),
               "model.norm.weight": _bf16(rng, d["hidden"]), "lm_head.weight": _bf16(rng, d["vocab"], d["hidden"])}
    for name, out, inp in (("q_proj", q_out, d["hidden"]), ("k_proj", kv_out, d["hidden"]),
                           ("v_proj", kv_out, d["hidden"]), ("o_proj", d["hidden"], q_out)):
        tensors.update(_nvfp4_linear(rng, f"{layer}.self_attn.{name}", out, inp))
    tensors[f"{layer}.self_attn.k_proj.k_scale"] = Raw("F32", np.array(0.02, dtype=np.float32))
    tensors[f"{layer}.self_attn.v_proj.v_scale"] = Raw("F32", np.array(0.02, dtype=np.float32))
    for expert in range(d["experts"]):
        base = f"{layer}.block_sparse_moe.experts.{expert}"
        tensors.update(_nvfp4_linear(rng, f"{base}.w1", d["ffn"], d["hidden"]))
        tensors.update(_nvfp4_linear(rng, f"{base}.w3", d["ffn"], d["hidden"]))
        tensors.update(_nvfp4_linear(rng, f"{base}.w2", d["hidden"], d["ffn"]))
    return tensors


def write_hf_checkpoint(directory: Path, tensors: dict[str, Raw] | None = None, **overrides) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    quant = {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16, "exclude_modules": HF_EXCLUDE}
    quant.update(overrides)
    group = {"num_bits": 4, "type": "float", "group_size": 16, "dynamic": False}
    config = {**HF_CONFIG, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "NVFP4", "ignore": HF_EXCLUDE,
        "config_groups": {"group_0": {"weights": group, "input_activations": group, "targets": ["Linear"]}},
        "kv_cache_scheme": {"num_bits": 8, "type": "float", "dynamic": False}}}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "hf_quant_config.json").write_text(json.dumps(
        {"producer": {"name": "modelopt", "version": "0.47.0"}, "quantization": quant}))
    write_safetensors(directory / "model.safetensors", tensors if tensors is not None else hf_tensors())
    return directory


TRT_NAMES = ("weights_scaling_factor", "weights_scaling_factor_2", "activation_scaling_factor")


def trtllm_rank_tensors(tp: int = 1, seed: int = 0) -> dict[str, Raw]:
    rng = np.random.default_rng(seed)
    d = DIMS
    layer = "transformer.layers.0"
    heads, kv = d["heads"] // tp, max(d["kv_heads"] // tp, 1)
    tensors = {"transformer.vocab_embedding.weight": _bf16(rng, d["vocab"], d["hidden"]),
               f"{layer}.input_layernorm.weight": _bf16(rng, d["hidden"]),
               f"{layer}.post_layernorm.weight": _bf16(rng, d["hidden"]),
               f"{layer}.mlp.router.weight": Raw("F32", rng.normal(0, 0.05, (d["experts"], d["hidden"])).astype(
                   np.float32)),
               f"{layer}.attention.kv_cache_scaling_factor": Raw("F32", np.array([0.02], dtype=np.float32)),
               "transformer.ln_f.weight": _bf16(rng, d["hidden"]),
               "lm_head.weight": _bf16(rng, -(-d["vocab"] // tp), d["hidden"])}
    tensors.update(_nvfp4_linear(rng, f"{layer}.attention.qkv", (heads + 2 * kv) * d["head_dim"], d["hidden"],
                                 TRT_NAMES))
    tensors.update(_nvfp4_linear(rng, f"{layer}.attention.dense", d["hidden"], heads * d["head_dim"], TRT_NAMES))
    tensors.update(_nvfp4_linear(rng, f"{layer}.mlp.fc", 2 * d["ffn"] // tp, d["hidden"], TRT_NAMES,
                                 experts=d["experts"]))
    tensors.update(_nvfp4_linear(rng, f"{layer}.mlp.proj", d["hidden"], d["ffn"] // tp, TRT_NAMES,
                                 experts=d["experts"]))
    return tensors


def write_trtllm_checkpoint(directory: Path, tp: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    d = DIMS
    config = {"architecture": "MixtralForCausalLM", "dtype": "bfloat16", "num_hidden_layers": 1,
              "num_attention_heads": d["heads"], "num_key_value_heads": d["kv_heads"], "hidden_size": d["hidden"],
              "head_size": d["head_dim"], "intermediate_size": d["ffn"], "vocab_size": d["vocab"],
              "mapping": {"world_size": tp, "tp_size": tp, "pp_size": 1, "moe_tp_size": tp, "moe_ep_size": 1},
              "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                               "exclude_modules": ["transformer.layers.0.mlp.router", "lm_head"]},
              "moe": {"num_experts": d["experts"], "top_k": 2, "normalization_mode": 1}}
    (directory / "config.json").write_text(json.dumps(config))
    for rank in range(tp):  # one seed: a real export's ranks hold the same replicated tensors (norms, scales)
        write_safetensors(directory / f"rank{rank}.safetensors", trtllm_rank_tensors(tp, seed=0))
    return directory
