"""The TRT-LLM split layout as data: rank arithmetic against TRT-LLM's Mapping, and cut/join round trips."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.stages.verify.shards import Layout, Split, join, joined_shape, split_experts, split_of


def _layout(tp=2, moe_ep=1, pp=1, heads=4, kv_heads=2, layers=2) -> Layout:
    return Layout(tp=tp, pp=pp, moe_tp=tp // moe_ep, moe_ep=moe_ep, heads=heads, kv_heads=kv_heads, vocab=512,
                  moe=True, embedding_split=0, layers=layers)


def test_moe_ranks_follow_trtllm_mapping_docstring():
    """TRT-LLM's Mapping: 8 GPUs, moe_tp 2 x moe_ep 4: moe_tp groups [0,4],[1,5],..; moe_ep groups [0..3],[4..7]."""
    layout = _layout(tp=8, moe_ep=4)
    assert [layout.moe_ranks(r) for r in (0, 4)] == [(0, 0), (1, 0)]
    assert {layout.moe_ranks(r)[0] for r in range(4)} == {0} and {layout.moe_ranks(r)[1] for r in range(4)} == {0, 1, 2, 3}
    assert [layout.tp_rank(*layout.moe_ranks(r)) for r in range(8)] == list(range(8))


def test_pipeline_stages_take_tensor_split_layers():
    layout = _layout(pp=3, layers=8)
    assert [list(layout.stage_layers(s)) for s in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7]]


@pytest.mark.parametrize("name,split", [
    ("transformer.layers.0.mlp.fc.weight", Split.EXPERT_GATED),
    ("transformer.layers.0.mlp.fc.weights_scaling_factor", Split.EXPERT_GATED),
    ("transformer.layers.0.mlp.proj.weights_scaling_factor", Split.EXPERT_IN),
    ("transformer.layers.0.mlp.fc.weights_scaling_factor_2", Split.EXPERT_ONLY),
    ("transformer.layers.0.mlp.fc.activation_scaling_factor", Split.REPLICATED),
    ("transformer.layers.0.mlp.router.weight", Split.REPLICATED),
    ("transformer.layers.0.attention.qkv.weight", Split.QKV),
    ("transformer.layers.0.attention.dense.weights_scaling_factor", Split.IN_DIM),
    ("lm_head.weight", Split.VOCAB),
    ("transformer.vocab_embedding.weight", Split.VOCAB),
])
def test_split_rules(name, split):
    assert split_of(name, _layout()) is split


@pytest.mark.parametrize("split", [Split.EXPERT_GATED, Split.EXPERT_IN, Split.EXPERT_ONLY])
@pytest.mark.parametrize("tp,ep", [(2, 1), (2, 2), (4, 2), (4, 4)])
def test_expert_cut_and_join_round_trip(split, tp, ep):
    layout = _layout(tp=tp, moe_ep=ep)
    whole = np.arange(8 * 16 * 8, dtype=np.uint8).reshape(8, 16, 8) if split is not Split.EXPERT_ONLY \
        else np.arange(8, dtype=np.float32)
    shards = split_experts(split, whole, layout)
    assert joined_shape(split, shards[0].shape, layout) == whole.shape
    assert np.array_equal(join(split, shards, layout), whole)


def test_gated_cut_keeps_up_then_gate_halves_per_rank():
    """fc = [w3; w1]: a moe_tp rank holds its slice of w3, then its slice of w1 (TRT-LLM convert_hf_llama)."""
    w3, w1 = np.zeros((2, 4, 1)), np.ones((2, 4, 1))
    shards = split_experts(Split.EXPERT_GATED, np.concatenate([w3, w1], axis=1), _layout(tp=2))
    assert [s[0, :, 0].tolist() for s in shards] == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_qkv_join_with_kv_heads_duplicated_over_tp():
    """2 kv heads over tp 4: each kv head sits on two ranks; the join keeps one copy of each."""
    layout = _layout(tp=4, heads=4, kv_heads=2)
    q = [np.full((1, 2), 10 + r) for r in range(4)]
    kv = [np.full((1, 2), 20 + r // 2) for r in range(4)]
    shards = [np.concatenate([q[r], kv[r], kv[r] + 100]) for r in range(4)]
    whole = join(Split.QKV, shards, layout)
    assert whole[:, 0].tolist() == [10, 11, 12, 13, 20, 21, 120, 121]
    assert joined_shape(Split.QKV, shards[0].shape, layout) == whole.shape


def test_replicated_shards_that_differ_are_refused():
    with pytest.raises(ValueError, match="tp rank 1"):
        join(Split.REPLICATED, [np.zeros(2), np.ones(2)], _layout())
