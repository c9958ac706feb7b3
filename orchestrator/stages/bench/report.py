"""What a bench run leaves behind: bench.json (atomic), the manifest record, a PNG plot, a rich table."""

from __future__ import annotations

import os
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json
from orchestrator.manifest import StageRecord, record_stage

BENCH_SCHEMA_VERSION = 1


def plot_path(bench_json: Path) -> Path:
    return bench_json.with_suffix(".png")


def write_bench_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, data)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("trtllm-orchestrator", "httpx", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def manifest_metrics(data: dict[str, Any]) -> dict[str, Any]:
    """The bench numbers the manifest (and so the model card) carries: headline plus a row per level."""
    keep = ("label", "concurrency", "request_rate", "complete", "requests", "completed", "errors", "ttft_ms",
            "itl_ms", "e2e_s", "tok_s_per_request", "tok_s_aggregate")
    return {
        "complete": data["complete"],
        "incomplete_reason": data["incomplete_reason"],
        "engine": data["engine"],
        "hardware": data["hardware"],
        "url": data["url"],
        "api": data["api"],
        "model": data["model"],
        "input_len": data["settings"]["input_len"],
        "output_len": data["settings"]["output_len"],
        "output_count_method": data["output"]["count_method"],
        **{k: v for k, v in data["headline"].items() if k != "reason"},
        "headline_reason": data["headline"].get("reason"),
        "levels": [{k: level[k] for k in keep} for level in data["levels"]],
    }


def record_manifest(workdir: Path, recipe_name: str | None, data: dict[str, Any], started_at: str,
                    ended_at: str, artifacts: dict[str, Path]) -> None:
    from orchestrator.layout import WorkdirLayout

    # A spent budget is a bounded, successful run with fewer numbers; a lost server or a failed probe is not.
    status = "failed" if data.get("server_gone") or data.get("error") else "done"
    record = StageRecord(
        status=status,
        reason=data["incomplete_reason"] or "",
        started_at=started_at,
        ended_at=ended_at,
        duration_s=data["duration_s"],
        artifacts={name: {"path": str(path), "bytes": path.stat().st_size}
                   for name, path in artifacts.items() if path.is_file()},
        versions=data["versions"],
        host=socket.gethostname(),
        gpu=None,
        metrics=manifest_metrics(data),
    )
    record_stage(WorkdirLayout(workdir).manifest, recipe_name or "", "bench", record)


def write_plot(data: dict[str, Any], path: Path) -> Path | None:
    """Throughput vs concurrency and latency percentiles as a PNG (matplotlib Agg); None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    levels = [lv for lv in data["levels"] if lv["completed"]]
    if not levels:
        return None
    rate_mode = levels[0]["concurrency"] is None
    xs = list(range(len(levels))) if rate_mode else [lv["concurrency"] for lv in levels]
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    throughput, ttft, e2e = fig.subplots(1, 3)
    throughput.plot(xs, [lv["tok_s_aggregate"] for lv in levels], "o-", label="aggregate")
    throughput.plot(xs, [lv["tok_s_per_request"]["mean"] for lv in levels], "s--", label="per request (mean)")
    throughput.set_title("output tokens/s")
    for axis, key, unit, title in ((ttft, "ttft_ms", "ms", "time to first token"),
                                   (e2e, "e2e_s", "s", f"end-to-end ({data['settings']['output_len']} tokens)")):
        for pct, style in (("p50", "o-"), ("p90", "^--"), ("p99", "v:")):
            axis.plot(xs, [lv[key][pct] for lv in levels], style, label=pct)
        axis.set_title(title)
        axis.set_ylabel(unit)
    for axis in (throughput, ttft, e2e):
        axis.set_xlabel("request rate level" if rate_mode else "concurrency")
        if not rate_mode and len(xs) > 1 and max(xs) / max(1, min(xs)) >= 8:
            axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [lv["label"] if rate_mode else str(x) for lv, x in zip(levels, xs, strict=True)])
        axis.grid(alpha=0.3)
        axis.legend()
    state = "" if data["complete"] else "  [INCOMPLETE]"
    fig.suptitle(f"{data['model']} at {data['url']} — {data['engine']}{state}", fontsize=10)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, path)
    return path


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(data: dict[str, Any]) -> None:
    """The bench on screen: one row per level, then the headline figures and what was measured how."""
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    if not out.is_terminal:  # logs and pipes: wide enough that no number is cut
        out = Console(highlight=False, width=160)
    table = Table(title=f"bench: {data['model']} at {data['url']} ({data['api']} API)")
    for name in ("level", "ok/req", "errors", "TTFT p50/p90/p99 ms", "ITL p50 ms", "e2e p50/p99 s",
                 "tok/s per req", "tok/s aggregate"):
        table.add_column(name, justify="left" if name == "level" else "right")
    for lv in data["levels"]:
        errors = str(lv["errors"]) + (f" ({', '.join(f'{k}: {n}' for k, n in lv['error_kinds'].items())})"
                                      if lv["errors"] else "")
        ttft, e2e = lv["ttft_ms"], lv["e2e_s"]
        table.add_row(
            lv["label"] + ("" if lv["complete"] else " [yellow](partial)[/]"),
            f"{lv['completed']}/{lv['requests']}",
            f"[red]{errors}[/]" if lv["errors"] else "0",
            f"{_fmt(ttft['p50'])}/{_fmt(ttft['p90'])}/{_fmt(ttft['p99'])}",
            _fmt(lv["itl_ms"]["p50"], 2),
            f"{_fmt(e2e['p50'], 2)}/{_fmt(e2e['p99'], 2)}",
            _fmt(lv["tok_s_per_request"]["mean"], 2),
            _fmt(lv["tok_s_aggregate"], 2),
        )
    out.print(table)
    head = data["headline"]
    out.print(f"engine: {data['engine']}; hardware: {data['hardware']}")
    if head.get("reason"):
        out.print(f"headline: not measured ({head['reason']})")
    else:
        out.print(f"tokens/s at concurrency 1: {_fmt(head['tokens_per_s_c1'], 2)}; "
                  f"latency for 100 output tokens: {_fmt(head['latency_100_tokens_s'], 2)} s "
                  f"({head['latency_100_method']}); TTFT p50 at concurrency 1: {_fmt(head['ttft_ms_c1'])} ms")
    out.print(f"prompt: {data['prompt']['method']}; output tokens: {data['output']['count_method']}; "
              f"fixed length: {data['output']['fixed_length_method']}", markup=False)
    for lv in data["levels"]:
        for example in lv["error_examples"]:
            out.print(f"  {lv['label']} error: {example}", markup=False)
    if not data["complete"]:
        out.print(f"[yellow]INCOMPLETE[/]: {data['incomplete_reason']} (partial results saved)")
    out.print(f"wrote {data['paths']['bench_json']}" + (f" and {data['paths']['plot']}" if data['paths']['plot']
                                                        else f" (no plot: {data['paths']['plot_note']})"))
