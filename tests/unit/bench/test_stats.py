"""Percentiles, level summaries and the headline figures."""

from __future__ import annotations

from orchestrator.stages.bench.client import RequestResult
from orchestrator.stages.bench.stats import headline, level_summary, percentile
from orchestrator.stages.bench.sweep import Level


def test_percentile_interpolates_like_numpy():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert abs(percentile(values, 90) - 7.6) < 1e-9
    assert percentile([], 50) is None


def _ok(started, ttft, e2e, tokens, chunks):
    return RequestResult(started=started, ok=True, ttft_s=ttft, e2e_s=e2e, output_tokens=tokens,
                         chunk_times=chunks, text="x" * tokens)


def test_level_summary_counts_errors_and_defines_itl_per_token():
    level = Level("c=1", 1, None, planned=4)
    level.results = [
        _ok(0.0, 0.1, 1.1, 11, [0.1, 0.6, 1.1]),  # 10 tokens after the first in 1.0 s: ITL 100 ms
        _ok(1.2, 0.1, 1.1, 11, [0.1, 1.1]),
        RequestResult(started=2.4, error="http 500", detail="boom"),
    ]
    summary = level_summary(level)
    assert (summary["requests"], summary["completed"], summary["errors"], summary["not_sent"]) == (4, 2, 1, 1)
    assert summary["error_kinds"] == {"http 500": 1}
    assert summary["itl_ms"]["p50"] == 100.0
    assert summary["ttft_ms"]["p50"] == 100.0
    assert summary["output_tokens_total"] == 22
    assert summary["tok_s_per_request"]["mean"] == 10.0
    assert summary["tok_s_aggregate"] == round(22 / 2.3, 2)  # first start 0.0 to last end 2.3


def _level_row(concurrency, completed=4, ttft=50.0, itl=20.0, e2e=2.0, tok_s=50.0):
    return {"concurrency": concurrency, "completed": completed, "ttft_ms": {"p50": ttft}, "itl_ms": {"p50": itl},
            "e2e_s": {"p50": e2e}, "tok_s_per_request": {"mean": tok_s}}


def test_headline_is_measured_at_100_tokens_and_scaled_otherwise():
    measured = headline([_level_row(1), _level_row(4)], output_len=100)
    assert measured["latency_100_tokens_s"] == 2.0 and measured["latency_100_method"].startswith("measured")
    scaled = headline([_level_row(1)], output_len=32)
    assert scaled["latency_100_tokens_s"] == round((50 + 99 * 20) / 1000, 3)
    assert "scaled from output_len 32" in scaled["latency_100_method"]
    assert scaled["tokens_per_s_c1"] == 50.0 and scaled["ttft_ms_c1"] == 50.0


def test_headline_is_absent_with_a_reason_without_concurrency_1():
    result = headline([_level_row(4)], output_len=100)
    assert result["tokens_per_s_c1"] is None and result["latency_100_tokens_s"] is None
    assert result["reason"] == "concurrency 1 is not in the sweep"
    assert headline([_level_row(1, completed=0)], 100)["reason"] == "no request completed at concurrency 1"
