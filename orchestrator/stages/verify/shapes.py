"""Expected linear shapes [out, in] from config.json, as data.

One table per checkpoint kind: a module-name pattern and the (out, in) it must have,
written as products of named model dimensions. A module no row matches is still checked
for internal consistency (scales against its own weight), just not against the config.
Rows cover the Llama/Mistral/Mixtral family the pipeline targets; another family is new rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import ceil, prod
from typing import Any

Dims = dict[str, int]
Product = tuple[str, ...]  # names of dims multiplied together


@dataclass(frozen=True)
class ShapeRule:
    pattern: re.Pattern[str]
    out: Product
    inp: Product
    experts: Product | None = None  # leading dim of stacked MoE weights (TRT-LLM)

    def expected(self, dims: Dims) -> tuple[int, ...] | None:
        needed = self.out + self.inp + (self.experts or ())
        if any(dims.get(name) is None for name in needed):
            return None
        shape = (prod(dims[n] for n in self.out), prod(dims[n] for n in self.inp))
        return (prod(dims[n] for n in self.experts), *shape) if self.experts else shape


def _rule(pattern: str, out: Product, inp: Product, experts: Product | None = None) -> ShapeRule:
    return ShapeRule(re.compile(pattern), out, inp, experts)


HF_SHAPES: list[ShapeRule] = [
    _rule(r"\.self_attn\.q_proj$", ("heads", "head_dim"), ("hidden",)),
    _rule(r"\.self_attn\.[kv]_proj$", ("kv_heads", "head_dim"), ("hidden",)),
    _rule(r"\.self_attn\.o_proj$", ("hidden",), ("heads", "head_dim")),
    _rule(r"\.block_sparse_moe\.experts\.\d+\.w[13]$", ("ffn",), ("hidden",)),
    _rule(r"\.block_sparse_moe\.experts\.\d+\.w2$", ("hidden",), ("ffn",)),
    _rule(r"\.block_sparse_moe\.gate$", ("experts",), ("hidden",)),
    _rule(r"\.mlp\.(gate|up)_proj$", ("ffn",), ("hidden",)),
    _rule(r"\.mlp\.down_proj$", ("hidden",), ("ffn",)),
    _rule(r"^lm_head$", ("vocab",), ("hidden",)),
]

# Per rank: tp splits attention heads and the FFN (moe_tp), ep splits the experts.
TRTLLM_SHAPES: list[ShapeRule] = [
    _rule(r"\.attention\.qkv$", ("qkv_rank",), ("hidden",)),
    _rule(r"\.attention\.dense$", ("hidden",), ("heads_rank", "head_dim")),
    _rule(r"\.mlp\.fc$", ("two", "ffn_rank"), ("hidden",), experts=("experts_rank",)),
    _rule(r"\.mlp\.proj$", ("hidden",), ("ffn_rank",), experts=("experts_rank",)),
    _rule(r"\.mlp\.router$", ("experts",), ("hidden",)),
    _rule(r"^lm_head$", ("vocab_rank",), ("hidden",)),
]


def hf_dims(config: dict[str, Any]) -> Dims:
    """Named dimensions of a Hugging Face config.json."""
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    return {
        "hidden": hidden, "heads": heads, "kv_heads": config.get("num_key_value_heads") or heads,
        "head_dim": head_dim, "ffn": config.get("intermediate_size"),
        "experts": config.get("num_local_experts") or config.get("num_experts"), "vocab": config.get("vocab_size"),
    }


def trtllm_dims(config: dict[str, Any]) -> Dims:
    """Named per-rank dimensions of a TensorRT-LLM checkpoint config.json."""
    mapping = config.get("mapping") or {}
    tp = mapping.get("tp_size", 1)
    moe_tp, moe_ep = mapping.get("moe_tp_size", tp), mapping.get("moe_ep_size", 1)
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_size") or (hidden // heads if hidden and heads else None)
    experts = (config.get("moe") or {}).get("num_experts")
    ffn, vocab = config.get("intermediate_size"), config.get("vocab_size")
    dims: Dims = {"hidden": hidden, "head_dim": head_dim, "experts": experts, "two": 2}
    if heads and head_dim:
        # KV heads are replicated when tp exceeds them, never split below one per rank.
        dims["heads_rank"] = heads // tp
        dims["qkv_rank"] = (heads // tp + 2 * max(kv_heads // tp, 1)) * head_dim
    if ffn:
        dims["ffn_rank"] = ffn // moe_tp if experts else ffn // tp
    if experts:
        dims["experts_rank"] = experts // moe_ep
    if vocab:
        dims["vocab_rank"] = ceil(vocab / tp)
    return dims


def expected_shape(rules: list[ShapeRule], module: str, dims: Dims) -> tuple[int, ...] | None:
    """The [out, in] (or [E, out, in]) the config implies for `module`, or None when unknown."""
    for rule in rules:
        if rule.pattern.search(module):
            return rule.expected(dims)
    return None
