"""`run_bench`: probe the endpoint, sweep the levels, and save bench.json, the plot and the manifest record.

bench.json is rewritten (atomically) after every level with "complete": false until the last
one, so a run that is killed, loses its server or spends its budget leaves its partial results.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from orchestrator.errors import OrchestratorError, StageFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import now_iso
from orchestrator.stages.bench.client import API_PATHS, Endpoint, is_listening, make_client, probe
from orchestrator.stages.bench.prompt import TokenCounter, build_prompts, load_tokenizer
from orchestrator.stages.bench.report import (
    BENCH_SCHEMA_VERSION,
    plot_path,
    record_manifest,
    versions,
    write_bench_json,
    write_plot,
)
from orchestrator.stages.bench.stats import DEFINITIONS, headline, level_summary
from orchestrator.stages.bench.sweep import Level, RunState, Sweep, level_specs, run_levels
from orchestrator.stages.bench.target import BenchTarget, cpu_description

MAX_PROMPT_POOL = 512
PROBE_SEED = 999_983


def run_bench(settings, target: BenchTarget, *, api: str = "auto", fixed_length: str | None = None,
              seed: int = 0) -> dict[str, Any]:
    """Benchmark `target` with `settings` (a BenchSection); return what bench.json holds.

    Raises UserError when nothing listens at the URL or it speaks no OpenAI API; a server that
    goes away mid-run does not raise here: the data says "server_gone" (see `raise_if_failed`).
    """
    if api not in ("auto", *API_PATHS):
        raise UserError(f"--api {api!r}: choose auto, {' or '.join(API_PATHS)}")
    if not is_listening(target.url):
        raise UserError(f"nothing is listening at {target.url}: start it with `orchestrator serve RECIPE --detach` "
                        "or pass --url of a running OpenAI-compatible server")
    tokenizer = load_tokenizer(target.tokenizer_dir, required=target.tokenizer_required)
    counter = TokenCounter(tokenizer, str(target.tokenizer_dir) if tokenizer is not None else None)
    run = _Run(settings, target, counter, seed)
    try:
        asyncio.run(run.main(api, fixed_length))
    except BaseException as exc:
        run.error = run.error or ("interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run.finish()
    return run.data


def raise_if_failed(data: dict[str, Any]) -> None:
    """Exit 1 (after the results are saved and shown) when the server went away mid-run."""
    if data.get("server_gone"):
        raise StageFailed(f"bench incomplete: {data['incomplete_reason']}",
                          hint=f"partial results are in {data['paths']['bench_json']}; check the server log")


class _Run:
    """State of one bench run, so partial results can be saved from wherever it stops."""

    def __init__(self, settings, target: BenchTarget, counter: TokenCounter, seed: int):
        self.settings, self.target, self.counter, self.seed = settings, target, counter, seed
        self.layout = WorkdirLayout(target.workdir)
        self.started_at, self.t0 = now_iso(), time.perf_counter()
        self.state: RunState | None = None
        self.endpoint: Endpoint | None = None
        self.attempts: list[str] = []
        self.levels: list[Level] = []
        self.model = target.model
        self.error: str | None = None
        self.data: dict[str, Any] = {}

    async def main(self, api: str, fixed_length: str | None) -> None:
        settings = self.settings
        self.state = RunState(deadline=self.t0 + settings.budget_s)
        async with make_client(self.target.url, settings.request_timeout_s) as client:
            if self.model is None:
                self.model = await _first_model(client, self.target.url) or "default"
            probe_prompt = build_prompts(self.counter, settings.input_len, "completions", 1, PROBE_SEED)[0]
            try:
                self.endpoint, self.attempts = await asyncio.wait_for(
                    probe(client, self.target.url, self.model, probe_prompt.text, settings.output_len,
                          settings.request_timeout_s, api=api, fixed_length=fixed_length),
                    timeout=max(1.0, self.state.deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                self.error = f"the probe did not finish within the time budget of {settings.budget_s:g} s"
                raise StageFailed(self.error, hint="raise bench.budget_s") from None
            except OrchestratorError as exc:
                self.error = exc.message
                self.attempts = list(exc.details)
                raise
            specs = level_specs(settings)
            pool = min(MAX_PROMPT_POOL, sum(spec.requests + settings.warmup for spec in specs))
            prompts = build_prompts(self.counter, settings.input_len, self.endpoint.api, pool, self.seed)
            sweep = Sweep(client, self.endpoint, self.counter, prompts, settings, self.state, self.seed)
            await run_levels(sweep, specs, after_level=self._save_partial)

    def _save_partial(self, levels: list[Level]) -> None:
        self.levels = list(levels)
        write_bench_json(self.layout.bench_json, self._assemble(final=False))

    def finish(self) -> None:
        """Assemble, plot and save everything measured so far; record the manifest."""
        bench_json = self.layout.bench_json
        self.data = self._assemble(final=True)
        plot = None
        try:
            plot = write_plot(self.data, plot_path(bench_json))
            note = None if plot else "matplotlib is not installed or no request completed"
        except Exception as exc:  # noqa: BLE001 - a failed plot must not lose the measurements
            note = f"plot failed: {type(exc).__name__}: {exc}"
        self.data["paths"].update(plot=str(plot) if plot else None, plot_note=note)
        write_bench_json(bench_json, self.data)
        artifacts = {"bench_json": bench_json, **({"plot": plot} if plot else {})}
        record_manifest(self.target.workdir, self.target.recipe_name, self.data, self.started_at, now_iso(),
                        artifacts)

    def _assemble(self, final: bool) -> dict[str, Any]:
        settings, state = self.settings, self.state
        summaries = [level_summary(level) for level in self.levels]
        planned = len(level_specs(settings))
        reason = self.error or (state.stop_reason if state else None)
        if reason is None and (len(self.levels) < planned or not all(lv.complete for lv in self.levels)):
            reason = "interrupted before every level ran" if final else "in progress"
        api = self.endpoint.api if self.endpoint else None
        server_usage = any(r.server_output_tokens is not None for lv in self.levels for r in lv.results)
        prompt_counts = [s["prompt_tokens_mean"] for s in summaries if s["prompt_tokens_mean"] is not None]
        return {
            "schema_version": BENCH_SCHEMA_VERSION,
            "complete": reason is None,
            "incomplete_reason": reason,
            "server_gone": bool(state and state.server_gone),
            "error": self.error,
            "created_at": now_iso(),
            "duration_s": round(time.perf_counter() - self.t0, 3),
            "recipe": self.target.recipe_name,
            "url": self.target.url,
            "endpoint": self.endpoint.url if self.endpoint else None,
            "api": api,
            "model": self.model,
            "engine": self.target.engine,
            "hardware": self.target.hardware,
            "client": {"host": socket.gethostname(), "cpu": cpu_description()},
            "settings": settings.model_dump(mode="json"),
            "prompt": {
                "input_len": settings.input_len,
                "method": self.counter.prompt_method(api or "completions"),
                "tokens_mean": round(sum(prompt_counts) / len(prompt_counts), 1) if prompt_counts else None,
            },
            "output": {
                "requested": settings.output_len,
                "count_method": self.counter.output_method(server_usage),
                "fixed_length_method": self.endpoint.fixed_length.description if self.endpoint else None,
            },
            "probe": self.attempts,
            "headline": headline(summaries, settings.output_len),
            "levels": summaries,
            "definitions": DEFINITIONS,
            "versions": versions(),
            "paths": {"bench_json": str(self.layout.bench_json), "plot": None, "plot_note": None},
        }


async def _first_model(client, url: str) -> str | None:
    """The first model id GET /v1/models lists, or None."""
    try:
        response = await client.get(url.rstrip("/") + "/v1/models", timeout=10)
        return response.json()["data"][0]["id"]
    except Exception:  # noqa: BLE001 - only a default for the request's "model" field
        return None
