"""A tiny seeded Mixtral (2 layers, 4 experts top-2, hidden 128) with a word-level tokenizer, built for tests.

Random weights: enough for real modelopt calibration and export, in seconds on a CPU.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [f"w{i}" for i in range(500)]
SPECIALS = ["<unk>", "<s>", "</s>"]
VOCAB_SIZE = 512  # 503 tokens, rounded up


def build_tiny_mixtral(directory: Path, seed: int = 0, *, dense: bool = False) -> Path:
    """Save a tiny MixtralForCausalLM (BF16 safetensors) and its tokenizer into `directory`.

    dense=True: a LlamaForCausalLM of the same size instead (one MLP per layer, no experts).
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MixtralConfig,
        MixtralForCausalLM,
        PreTrainedTokenizerFast,
    )

    vocab = {token: index for index, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>")

    torch.manual_seed(seed)
    shape = dict(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1,
                 eos_token_id=2, tie_word_embeddings=False)
    if dense:
        model = LlamaForCausalLM(LlamaConfig(**shape))
    else:
        model = MixtralForCausalLM(MixtralConfig(**shape, num_local_experts=4, num_experts_per_tok=2))
    model = model.to(torch.bfloat16).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def write_corpus(path: Path, lines: int = 120, words_per_line: int = 24, seed: int = 0) -> Path:
    """A seeded text of tokenizer words, one document per line."""
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=words_per_line)) for _ in range(lines)) + "\n")
    return path


def tiny_recipe(model_dir: Path, corpus: Path, workdir: Path, **quantize) -> dict:
    """A CPU recipe (as data) for the tiny model: 16 samples x 64 tokens, batch 8."""
    return {
        "name": "tiny-test",
        "model": {"source": str(model_dir), "dtype": "bfloat16"},
        "platform": "cpu",
        "quantize": {"format": "nvfp4", "kv_cache": "fp8",
                     "calibration": {"dataset": str(corpus), "samples": 16, "seq_len": 64, "batch_size": 8, "seed": 0},
                     **quantize},
        "checkpoint": {"tp": 1, "pp": 1, "ep": 1},
        "eval": {"perplexity": {"dataset": str(corpus), "seq_len": 64, "stride": 64}},
        "workdir": str(workdir),
    }


def same_bits(a, b) -> bool:
    """Bit equality of two tensors, any dtype (FP8 and 0-d scalars included)."""
    import torch

    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                     b.reshape(-1).view(torch.uint8))


def checkpoint_tensors(directory) -> dict:
    """Every tensor of a checkpoint directory's safetensors files."""
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(str(path)))
    return tensors
