"""Sliding-window perplexity of a causal LM over one token stream.

Windows of `seq_len` tokens start every `stride` tokens (Hugging Face's perplexity
recipe); each token after the first is scored exactly once, by the first window that
reaches it, with as much left context as that window gives (a token at the start of a
window is never a target: it has no context there). Perplexity = exp(mean NLL) over the
scored tokens, the NLL summed in float64.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.stages.progress import ProgressFn

TOKENS_PER_BATCH = 8192  # windows per forward = max(1, this // seq_len)



@dataclass(frozen=True)
class Window:
    begin: int  # first token of the window (absolute index in the stream)
    end: int  # one past the last token
    first_target: int  # first token scored here; tokens before it were scored by an earlier window


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    nll_sum: float
    tokens: int  # scored tokens
    windows: int
    seconds: float


def make_windows(n_tokens: int, seq_len: int, stride: int) -> list[Window]:
    """The evaluation windows over `n_tokens` tokens (stride <= seq_len, so every token is covered)."""
    if stride > seq_len:
        raise ValueError(f"stride {stride} > seq_len {seq_len} would skip tokens")
    windows: list[Window] = []
    scored_until = 1  # token 0 has no context anywhere
    for begin in range(0, n_tokens, stride):
        end = min(begin + seq_len, n_tokens)
        first = max(scored_until, begin + 1)
        if first < end:
            windows.append(Window(begin, end, first))
        scored_until = max(scored_until, end)
        if end == n_tokens:
            break
    return windows


def perplexity(model: Any, token_ids: Any, seq_len: int, stride: int, *, device: Any = None,
               batch_size: int | None = None, progress: ProgressFn | None = None,
               label: str = "perplexity") -> Perplexity:
    """Perplexity of `model` (a transformers causal LM) on `token_ids` (1-D int tensor)."""
    import torch
    import torch.nn.functional as F

    start = time.perf_counter()
    device = device if device is not None else next(model.parameters()).device
    windows = make_windows(int(token_ids.numel()), seq_len, stride)
    if not windows:
        raise ValueError("need at least 2 tokens to measure perplexity")
    batch_size = batch_size or max(1, TOKENS_PER_BATCH // seq_len)
    by_length: dict[int, list[Window]] = {}
    for window in windows:
        by_length.setdefault(window.end - window.begin, []).append(window)
    nll_sum, scored, done = 0.0, 0, 0
    # no_grad, not inference_mode: the emulator's input cache relies on tensor version counters.
    with torch.no_grad():
        for length, group in by_length.items():
            for i in range(0, len(group), batch_size):
                batch = group[i:i + batch_size]
                ids = torch.stack([token_ids[w.begin:w.end] for w in batch]).to(device)
                logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
                targets = ids[:, 1:]
                nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                      reduction="none").view(len(batch), length - 1)
                # Target j of window w is token w.begin + 1 + j; keep those not scored before.
                positions = torch.arange(1, length, device=device)
                firsts = torch.tensor([w.first_target - w.begin for w in batch], device=device)
                keep = positions[None, :] >= firsts[:, None]
                nll_sum += float(nll[keep].double().sum())
                scored += int(keep.sum())
                done += len(batch)
                if progress:
                    progress(label, done, len(windows))
    mean = nll_sum / scored
    # A broken checkpoint can give a mean NLL past exp's range: report inf, not an OverflowError.
    value = math.inf if mean > 700 else math.exp(mean)
    return Perplexity(perplexity=value, nll_sum=nll_sum, tokens=scored, windows=len(windows),
                      seconds=round(time.perf_counter() - start, 3))
