"""Per-level summaries and the headline figures, computed from request results.

Definitions (also written into bench.json under "definitions"):
- TTFT: request start to the first streamed chunk that carries text.
- ITL (inter-token latency): per request (e2e - TTFT) / (output tokens - 1), i.e. the mean time per
  output token after the first; chunk gaps are reported separately because a server may put several
  tokens in one chunk (transformers serve streams words, trtllm-serve one token per chunk).
- tok/s per request: output tokens / end-to-end seconds (the seed card's "tokens/second").
- aggregate tok/s: all output tokens of a level / the level's wall time (first start to last end).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

DEFINITIONS = {
    "ttft": "request start to the first streamed chunk carrying text",
    "itl": "per request (e2e - ttft) / (output_tokens - 1): mean time per output token after the first",
    "chunk_gap": "time between consecutive text chunks of the stream (a chunk may hold several tokens)",
    "tok_s_per_request": "output tokens / end-to-end seconds of one request (the seed card's tokens/second)",
    "tok_s_aggregate": "all output tokens of a level / the level's wall time (first request start to last end)",
    "tokens_per_s_c1": "mean tok_s_per_request at concurrency 1",
    "latency_100_tokens_s": "end-to-end seconds for 100 output tokens at concurrency 1: the measured e2e p50 when "
                            "output_len is 100, else TTFT p50 + 99 x ITL p50 (scaled; the method says which)",
}

PERCENTILES = (50, 90, 99)


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, float | None]:
    """{p50, p90, p99, mean} of `values` times `scale`, rounded; all None without data."""
    out: dict[str, float | None] = {}
    for pct in PERCENTILES:
        value = percentile(values, pct)
        out[f"p{pct}"] = None if value is None else round(value * scale, digits)
    out["mean"] = round(sum(values) / len(values) * scale, digits) if values else None
    return out


def level_summary(level) -> dict[str, Any]:
    """The numbers of one level (see the module docstring for what each means)."""
    ok = [r for r in level.results if r.ok]
    failed = [r for r in level.results if not r.ok and r.error != "cancelled"]
    cancelled = [r for r in level.results if r.error == "cancelled"]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    e2e = [r.e2e_s for r in ok]
    itl = [(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in ok
           if r.ttft_s is not None and r.output_tokens > 1]
    gaps = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]
    per_request = [r.output_tokens / r.e2e_s for r in ok if r.e2e_s > 0]
    total_out = sum(r.output_tokens for r in ok)
    spans = [(r.started, r.started + r.e2e_s) for r in ok]
    wall = (max(end for _, end in spans) - min(start for start, _ in spans)) if spans else 0.0
    prompt_counts = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    server_counts = [r.server_output_tokens for r in ok if r.server_output_tokens is not None]
    return {
        "label": level.label,
        "concurrency": level.concurrency,
        "request_rate": level.request_rate,
        "complete": level.complete,
        "note": level.note,
        "requests": level.planned,
        "completed": len(ok),
        "errors": len(failed),
        "error_kinds": dict(Counter(r.error for r in failed)),
        "error_examples": list(dict.fromkeys(f"{r.error}: {r.detail}" for r in failed))[:5],
        "cancelled": len(cancelled),
        "not_sent": max(0, level.planned - len(level.results)),
        "warmup_errors": level.warmup_errors,
        "wall_s": round(wall, 3),
        "prompt_tokens_mean": round(sum(prompt_counts) / len(prompt_counts), 1) if prompt_counts else None,
        "output_tokens_total": total_out,
        "output_tokens_mean": round(total_out / len(ok), 1) if ok else None,
        "server_output_tokens_mean": round(sum(server_counts) / len(server_counts), 1) if server_counts else None,
        "ttft_ms": distribution(ttft, 1000.0, 1),
        "itl_ms": distribution(itl, 1000.0, 2),
        "chunk_gap_ms": distribution(gaps, 1000.0, 2),
        "e2e_s": distribution(e2e, 1.0, 3),
        "tok_s_per_request": distribution(per_request, 1.0, 2),
        "tok_s_aggregate": round(total_out / wall, 2) if wall > 0 else None,
        "requests_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
    }


def headline(levels: list[dict[str, Any]], output_len: int) -> dict[str, Any]:
    """The seed card's two figures (tokens/s at concurrency 1, latency for 100 output tokens) plus TTFT.

    Each is None with a `reason` when it was not measured; nothing is estimated from another level.
    """
    c1 = next((lv for lv in levels if lv["concurrency"] == 1), None)
    if c1 is None or not c1["completed"]:
        reason = ("concurrency 1 is not in the sweep" if c1 is None else "no request completed at concurrency 1")
        return {"tokens_per_s_c1": None, "latency_100_tokens_s": None, "latency_100_method": None,
                "ttft_ms_c1": None, "reason": reason}
    ttft_p50_ms, itl_p50_ms = c1["ttft_ms"]["p50"], c1["itl_ms"]["p50"]
    if output_len == 100:
        latency, method = c1["e2e_s"]["p50"], "measured: e2e p50 at concurrency 1 with output_len 100"
    elif ttft_p50_ms is not None and itl_p50_ms is not None:
        latency = round((ttft_p50_ms + 99 * itl_p50_ms) / 1000.0, 3)
        method = f"scaled from output_len {output_len}: TTFT p50 + 99 x ITL p50 at concurrency 1"
    else:
        latency, method = None, "not measured: no TTFT/ITL at concurrency 1"
    return {
        "tokens_per_s_c1": c1["tok_s_per_request"]["mean"],
        "latency_100_tokens_s": latency,
        "latency_100_method": method,
        "ttft_ms_c1": ttft_p50_ms,
        "reason": None,
    }
