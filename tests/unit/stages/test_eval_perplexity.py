"""Sliding-window perplexity: every token scored once, and the value of known models."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from orchestrator.stages.perplexity import make_windows


@pytest.mark.parametrize(("n", "seq_len", "stride"), [(10, 4, 4), (10, 4, 2), (11, 4, 3), (4, 4, 4), (3, 8, 8),
                                                     (1000, 256, 128), (2, 2, 1)])
def test_every_token_after_the_first_is_scored_exactly_once(n, seq_len, stride):
    scored = []
    for window in make_windows(n, seq_len, stride):
        assert window.end - window.begin <= seq_len and window.begin < window.first_target < window.end + 1
        scored.extend(range(window.first_target, window.end))
    # with stride == seq_len the first token of each window has no context there and is skipped
    expected = [t for t in range(1, n) if stride < seq_len or t % seq_len != 0]
    assert scored == expected


def test_overlapping_windows_give_later_tokens_context():
    windows = make_windows(10, 4, 2)
    assert [(w.begin, w.end, w.first_target) for w in windows] == [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]


def test_stride_longer_than_the_window_is_refused():
    with pytest.raises(ValueError, match="skip tokens"):
        make_windows(10, 4, 5)


class FixedLogits:
    """A causal LM stand-in whose next-token distribution is the same everywhere."""

    def __init__(self, logits):
        self.logits = logits

    def parameters(self):
        import torch

        yield torch.zeros(1)

    def __call__(self, input_ids, use_cache=False):
        batch, length = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(batch, length, -1))


def test_uniform_model_has_the_vocabulary_as_perplexity():
    torch = pytest.importorskip("torch")
    from orchestrator.stages.perplexity import perplexity

    ids = torch.randint(0, 50, (301,), generator=torch.Generator().manual_seed(0))
    result = perplexity(FixedLogits(torch.zeros(50)), ids, seq_len=64, stride=32, batch_size=3)
    assert result.perplexity == pytest.approx(50.0, rel=1e-6)  # float32 log-softmax
    assert result.tokens == 300 and result.windows == len(make_windows(301, 64, 32))


def test_known_distribution_gives_exp_of_the_mean_nll():
    torch = pytest.importorskip("torch")
    from orchestrator.stages.perplexity import perplexity

    probabilities = torch.tensor([0.5, 0.25, 0.25])
    ids = torch.tensor([0, 0, 1, 2, 0, 1])  # scored: 0 1 2 0 1 (seq_len 6, one window)
    result = perplexity(FixedLogits(probabilities.log()), ids, seq_len=6, stride=6)
    mean_nll = -(2 * math.log(0.5) + 3 * math.log(0.25)) / 5
    assert result.perplexity == pytest.approx(math.exp(mean_nll))


def test_a_blown_up_model_reports_infinite_perplexity():
    torch = pytest.importorskip("torch")
    from orchestrator.stages.perplexity import perplexity

    logits = torch.tensor([0.0, 1e6])  # certain of token 1, the text is all token 0
    result = perplexity(FixedLogits(logits), torch.zeros(20, dtype=torch.long), seq_len=10, stride=10)
    assert result.perplexity == math.inf
