"""How TensorRT-LLM splits each tensor over the ranks of a checkpoint, and how the shards join back.

Facts as data: `SPLIT_RULES` names, per tensor-name pattern, one `Split` kind; the kinds say
along which dimension tensor parallelism (tp), MoE tensor parallelism (moe_tp) and MoE
expert parallelism (moe_ep) cut. What the rows encode, from TensorRT-LLM and modelopt:

- Rank r of a pipeline stage is tp_rank r % tp_size; moe_tp_rank = tp_rank // moe_ep_size and
  moe_ep_rank = tp_rank % moe_ep_size; expert-parallel rank e holds the contiguous experts
  [e * E/moe_ep, (e+1) * E/moe_ep). (NVIDIA/TensorRT-LLM@05ebebb2c1d34320db9019f2b7ace6009a67e997
  tensorrt_llm/mapping.py: Mapping.moe_tp_rank, moe_ep_rank, ep_experts.)
- Stacked experts: `mlp.fc` is [E, 2*ffn, hidden] = concat([w3, w1], dim=-2) (up, then gate),
  and moe_tp splits w3 and w1 each along ffn before concatenating them again per rank;
  `mlp.proj` (w2) [E, hidden, ffn] splits along ffn (dim 2). (NVIDIA/TensorRT-LLM@0afa06ab2971a19a9809c66adc444c9280b16088
  tensorrt_llm/models/llama/convert.py, convert_hf_llama: `split(w3, moe_tp_size, moe_tp_rank, dim=1)`,
  `split(w2, ..., dim=2)`, `torch.concat([w3, w1], dim=-2)`; modelopt 0.47
  export/layer_utils.py and postprocess.py `_split_model_config_for_tp` do the same.)
- NVFP4 scales of experts: `weights_scaling_factor` [E, out, in/16] follows its weight;
  `weights_scaling_factor_2` [E] is per expert (shared by w3 and w1), so only moe_ep cuts it;
  `activation_scaling_factor` [1] is one value for all experts, on every rank (TRT-LLM's
  MOEWeightWrapper.postprocess takes the max over experts: tensorrt_llm/layers/moe.py).
- Attention: `qkv` [(q_heads + 2 kv_heads) * head_dim, hidden] holds each rank's own q, k and v
  heads; kv heads fewer than tp are duplicated, one per rank. `dense` splits its input dim.
- `lm_head` and (with use_parallel_embedding) `vocab_embedding` split the padded vocabulary.
- Everything else (norms, routers, scalar scales, KV-cache scales) is the same on every rank.
- Pipeline stages renumber their layers from 0; stage s holds TRT-LLM's `Mapping.pp_layers`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.stages.verify.report import Violation

if TYPE_CHECKING:
    import numpy as np

    from orchestrator.stages.verify.tensors import TensorIndex


class Split(str, Enum):
    REPLICATED = "replicated"  # identical on every rank of a stage
    OUT_DIM = "out-dim"  # tp along dim 0 (column-parallel linear)
    IN_DIM = "in-dim"  # tp along the last dim (row-parallel linear)
    QKV = "qkv"  # tp by heads, q/k/v blocks per rank
    VOCAB = "vocab"  # tp along dim 0 of the padded vocabulary
    EXPERT_GATED = "expert-gated"  # [E, 2*ffn, in]: ep on dim 0, moe_tp on each half of dim 1
    EXPERT_IN = "expert-in"  # [E, out, ffn]: ep on dim 0, moe_tp on dim 2
    EXPERT_ONLY = "expert-only"  # [E, ...]: ep on dim 0, same across moe_tp

    @property
    def is_expert(self) -> bool:
        return self in (Split.EXPERT_GATED, Split.EXPERT_IN, Split.EXPERT_ONLY)


@dataclass(frozen=True)
class SplitRule:
    pattern: re.Pattern[str]
    split: Split
    moe_only: bool = False  # the row applies only to a checkpoint with a `moe` section


def _row(pattern: str, split: Split, moe_only: bool = False) -> SplitRule:
    return SplitRule(re.compile(pattern), split, moe_only)


_SCALED = r"(weight|weights_scaling_factor)"
# First match wins: the MoE rows come before the dense-MLP rows with the same names.
SPLIT_RULES: list[SplitRule] = [
    _row(rf"\.mlp\.fc\.{_SCALED}$", Split.EXPERT_GATED, moe_only=True),
    _row(rf"\.mlp\.proj\.{_SCALED}$", Split.EXPERT_IN, moe_only=True),
    _row(r"\.mlp\.(fc|proj)\.weights_scaling_factor_2$", Split.EXPERT_ONLY, moe_only=True),
    _row(r"\.attention\.qkv\.(weight|weights_scaling_factor|bias)$", Split.QKV),
    _row(rf"\.attention\.dense\.{_SCALED}$", Split.IN_DIM),
    _row(r"\.mlp\.(fc|gate)\.(weight|weights_scaling_factor|bias)$", Split.OUT_DIM),  # dense MLP (tested on a tiny Llama)
    _row(rf"\.mlp\.proj\.{_SCALED}$", Split.IN_DIM),
    _row(r"^lm_head\.weight$", Split.VOCAB),
]
_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.")


@dataclass(frozen=True)
class Layout:
    """The parallel sizes of a checkpoint (config.json `mapping`) and the dims the splits need."""

    tp: int
    pp: int
    moe_tp: int
    moe_ep: int
    heads: int | None
    kv_heads: int | None
    vocab: int | None
    moe: bool
    embedding_split: int | None  # dim of vocab_embedding split by tp; None: replicated
    layers: int | None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        mapping = config.get("mapping") or {}
        tp = mapping.get("tp_size", 1)
        heads = config.get("num_attention_heads")
        return cls(
            tp=tp, pp=mapping.get("pp_size", 1), moe_tp=mapping.get("moe_tp_size", tp),
            moe_ep=mapping.get("moe_ep_size", 1), heads=heads, kv_heads=config.get("num_key_value_heads") or heads,
            vocab=config.get("vocab_size"), moe=bool(config.get("moe")),
            embedding_split=config.get("embedding_sharding_dim", 0) if config.get("use_parallel_embedding") else None,
            layers=config.get("num_hidden_layers"))

    def moe_ranks(self, tp_rank: int) -> tuple[int, int]:
        """(moe_tp_rank, moe_ep_rank) of a tp rank, as TRT-LLM's Mapping computes them."""
        return tp_rank // self.moe_ep, tp_rank % self.moe_ep

    def tp_rank(self, moe_tp_rank: int, moe_ep_rank: int) -> int:
        return moe_tp_rank * self.moe_ep + moe_ep_rank

    def stage_layers(self, stage: int) -> range:
        """The global layers of pipeline stage `stage` (torch.tensor_split: the first stages take the rest)."""
        base, extra = divmod(self.layers or 0, self.pp)
        start = stage * base + min(stage, extra)
        return range(start, start + base + (1 if stage < extra else 0))


def split_of(name: str, layout: Layout) -> Split:
    """How TRT-LLM splits the tensor `name` over the ranks of a pipeline stage."""
    if name == "transformer.vocab_embedding.weight" and layout.embedding_split is not None:
        return Split.VOCAB if layout.embedding_split == 0 else Split.IN_DIM
    for rule in SPLIT_RULES:
        if (layout.moe or not rule.moe_only) and rule.pattern.search(name):
            return rule.split
    return Split.REPLICATED


def global_name(name: str, layout: Layout, stage: int) -> str:
    """A rank's tensor name with its stage-local layer index made global."""
    match = _LAYER.match(name)
    if not match or layout.pp == 1:
        return name
    index = layout.stage_layers(stage)[int(match.group(1))]
    return f"transformer.layers.{index}.{name[match.end():]}"


# ---- shapes (no data read) ----

def joined_shape(split: Split, shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    """The unsharded shape of a tensor whose shard on every rank of a stage has `shape`."""
    if split is Split.REPLICATED or not shape:
        return shape
    if split is Split.OUT_DIM:
        return (shape[0] * layout.tp, *shape[1:])
    if split is Split.IN_DIM:
        return (*shape[:-1], shape[-1] * layout.tp)
    if split is Split.VOCAB:
        return (min(shape[0] * layout.tp, layout.vocab or shape[0] * layout.tp), *shape[1:])
    if split is Split.QKV:
        q_rank, kv_rank = _heads_per_rank(layout)
        rows = shape[0] // (q_rank + 2 * kv_rank)
        return ((layout.heads + 2 * layout.kv_heads) * rows, *shape[1:])
    if split is Split.EXPERT_GATED:
        return (shape[0] * layout.moe_ep, shape[1] * layout.moe_tp, *shape[2:])
    if split is Split.EXPERT_IN:
        return (shape[0] * layout.moe_ep, *shape[1:-1], shape[-1] * layout.moe_tp)
    return (shape[0] * layout.moe_ep, *shape[1:])  # EXPERT_ONLY


def _heads_per_rank(layout: Layout) -> tuple[int, int]:
    return layout.heads // layout.tp, max(layout.kv_heads // layout.tp, 1)


# ---- values ----

def join(split: Split, shards: list[np.ndarray], layout: Layout) -> np.ndarray:
    """The unsharded tensor from one stage's shards, indexed by tp rank.

    Raises ValueError when shards that must be identical differ.
    """
    import numpy as np

    if split is Split.REPLICATED:
        _same(shards)
        return shards[0]
    if split is Split.OUT_DIM:
        return np.concatenate(shards, axis=0)
    if split is Split.IN_DIM:
        return np.concatenate(shards, axis=-1)
    if split is Split.VOCAB:
        return np.concatenate(shards, axis=0)[:layout.vocab]
    if split is Split.QKV:
        return _join_qkv(shards, layout)
    per_ep = []
    for ep_rank in range(layout.moe_ep):
        group = [shards[layout.tp_rank(t, ep_rank)] for t in range(layout.moe_tp)]
        per_ep.append(_join_moe_tp(split, group))
    return np.concatenate(per_ep, axis=0)


def _join_moe_tp(split: Split, group: list[np.ndarray]) -> np.ndarray:
    import numpy as np

    if split is Split.EXPERT_ONLY:
        _same(group)
        return group[0]
    if split is Split.EXPERT_IN:
        return np.concatenate(group, axis=-1)
    halves = [np.split(shard, 2, axis=1) for shard in group]  # each rank: [w3 part; w1 part]
    return np.concatenate([np.concatenate([h[0] for h in halves], axis=1),
                           np.concatenate([h[1] for h in halves], axis=1)], axis=1)


def _join_qkv(shards: list[np.ndarray], layout: Layout) -> np.ndarray:
    import numpy as np

    q_rank, kv_rank = _heads_per_rank(layout)
    rows = shards[0].shape[0] // (q_rank + 2 * kv_rank)
    q, k, v = [], [], []
    # kv heads fewer than tp are duplicated: every (tp / kv_heads)-th rank holds a distinct one.
    kv_step = max(layout.tp // layout.kv_heads, 1)
    for rank, shard in enumerate(shards):
        q.append(shard[:q_rank * rows])
        if rank % kv_step == 0:
            k.append(shard[q_rank * rows:(q_rank + kv_rank) * rows])
            v.append(shard[(q_rank + kv_rank) * rows:])
    return np.concatenate(q + k + v, axis=0)


def split_experts(split: Split, full: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """An unsharded expert tensor cut for every tp rank of `layout` (the inverse of `join`)."""
    import numpy as np

    out: list[np.ndarray] = []
    for tp_rank in range(layout.tp):
        moe_tp_rank, ep_rank = layout.moe_ranks(tp_rank)
        experts = np.split(full, layout.moe_ep, axis=0)[ep_rank]
        if split is Split.EXPERT_ONLY:
            out.append(experts)
        elif split is Split.EXPERT_IN:
            out.append(np.split(experts, layout.moe_tp, axis=-1)[moe_tp_rank])
        elif split is Split.EXPERT_GATED:
            w3, w1 = np.split(experts, 2, axis=1)
            out.append(np.concatenate([np.split(w3, layout.moe_tp, axis=1)[moe_tp_rank],
                                       np.split(w1, layout.moe_tp, axis=1)[moe_tp_rank]], axis=1))
        else:
            raise ValueError(f"{split.value} is not an expert split")
    return out


def _same(shards: list[np.ndarray]) -> None:
    import numpy as np

    for rank, shard in enumerate(shards[1:], start=1):
        if shard.shape != shards[0].shape or not np.array_equal(shard, shards[0]):
            raise ValueError(f"differs between tp rank 0 and tp rank {rank}, but must be the same on every rank")


def recombine(checkpoint_dir: Path | str) -> dict[str, np.ndarray]:
    """Every tensor of a TRT-LLM checkpoint as the unsharded whole (raw dtypes: BF16 as uint16, FP8 as uint8).

    Loads the whole checkpoint into memory: for tests and small models. Raises ValueError
    naming the tensor when shards that must agree do not.
    """
    import json

    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    checkpoint_dir = Path(checkpoint_dir)
    config = json.loads((checkpoint_dir / "config.json").read_text())
    layout = Layout.from_config(config)
    whole: dict[str, np.ndarray] = {}
    for stage in range(layout.pp):
        files = [SafetensorsFile(checkpoint_dir / f"rank{stage * layout.tp + t}.safetensors") for t in range(layout.tp)]
        for name in files[0].tensors:
            split = split_of(name, layout)
            try:
                whole[global_name(name, layout, stage)] = join(split, [f.read(name) for f in files], layout)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{name} (stage {stage}, split {split.value}): {exc}") from None
    return whole


# ---- the check verify runs (headers, plus the values of small tensors) ----

_SMALL = 4096  # elements: replicated tensors up to this size are compared value by value


def recombination_violations(indexes: list[TensorIndex], config: dict[str, Any]) -> Iterator[Violation]:
    """Shards that do not join into the unsharded tensors config.json describes.

    Shapes only for the large tensors; the small ones that must be identical on every rank
    (scales, norms of tiny models) are compared by value. `indexes` is one per rank, in rank order.
    """
    from orchestrator.stages.verify.shapes import TRTLLM_SHAPES, expected_shape, trtllm_dims

    layout = Layout.from_config(config)
    whole_dims = trtllm_dims({**config, "mapping": {}})
    if layout.tp * layout.pp != len(indexes) or layout.tp % layout.moe_ep or layout.moe_tp * layout.moe_ep != layout.tp:
        return  # the mapping checks of trtllm.py report this
    experts = (config.get("moe") or {}).get("num_experts")
    for stage in range(layout.pp):
        group = indexes[stage * layout.tp:(stage + 1) * layout.tp]
        for name in group[0].names():
            infos = [index.info(name) for index in group]
            if any(info is None or info.shape != infos[0].shape for info in infos):
                continue  # _ranks_agree reports it
            split, shape = split_of(name, layout), infos[0].shape
            label = group[0].label(name)
            if split.is_expert and experts and shape and shape[0] * layout.moe_ep != experts:
                yield Violation(label, "trtllm.shards", f"holds {shape[0]} experts; {experts} experts / "
                                f"moe_ep_size {layout.moe_ep} = {experts // layout.moe_ep}")
                continue
            joined = joined_shape(split, shape, layout)
            want = _whole_shape(name, infos[0].dtype, TRTLLM_SHAPES, whole_dims, expected_shape)
            if want is not None and joined != want:
                yield Violation(label, "trtllm.shards", f"{split.value} shards of {list(shape)} join to "
                                f"{list(joined)}; config.json implies {list(want)} unsharded")
            if split in (Split.REPLICATED, Split.EXPERT_ONLY) and infos[0].numel <= _SMALL:
                yield from _small_agree(name, split, group, layout)


def _whole_shape(name: str, dtype: str, rules, dims, expected_shape) -> tuple[int, ...] | None:
    """The unsharded shape config.json implies for a weight, its block scales, or the embedding."""
    from orchestrator.nvfp4 import BLOCK_SIZE

    if name == "transformer.vocab_embedding.weight":
        return (dims["vocab_rank"], dims["hidden"]) if dims.get("vocab_rank") and dims.get("hidden") else None
    module, _, leaf = name.rpartition(".")
    logical = expected_shape(rules, module, dims)
    if logical is None:
        return None
    if leaf == "weight":
        return (*logical[:-1], logical[-1] // 2) if dtype == "U8" else logical
    if leaf == "weights_scaling_factor" and dtype == "F8_E4M3":
        return (*logical[:-1], logical[-1] // BLOCK_SIZE)
    return None


def _small_agree(name: str, split: Split, group: list[TensorIndex], layout: Layout) -> Iterator[Violation]:
    import numpy as np

    values = [index.where[name].read(name) for index in group]
    for tp_rank, value in enumerate(values):
        moe_tp_rank, ep_rank = layout.moe_ranks(tp_rank)
        reference = 0 if split is Split.REPLICATED else layout.tp_rank(0, ep_rank)
        if not np.array_equal(value, values[reference]):
            what = "every rank of a stage" if split is Split.REPLICATED else "every moe_tp rank of its experts"
            yield Violation(group[tp_rank].label(name), "trtllm.shards",
                            f"differs from rank {reference}'s, but must be the same on {what}")
            return
