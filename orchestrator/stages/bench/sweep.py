"""Run the levels of a bench: warm-up, then a fixed concurrency or a Poisson request rate, bounded.

Bounds: each request has its own timeout (in `client.send`); the whole run has a deadline
(bench.budget_s) after which in-flight requests are cancelled and no more are sent; a request that
loses its connection makes us check whether the server is still listening, and if it is not the
run stops with what it has. Nothing here raises for server trouble: levels say what happened.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from orchestrator.stages.bench.client import CONNECTION_ERRORS, Endpoint, RequestResult, is_listening, send
from orchestrator.stages.bench.prompt import Prompt, TokenCounter


@dataclass(frozen=True)
class LevelSpec:
    label: str
    concurrency: int | None  # None in request-rate mode
    request_rate: float | None
    requests: int


@dataclass
class Level:
    label: str
    concurrency: int | None
    request_rate: float | None
    planned: int
    results: list[RequestResult] = field(default_factory=list)
    warmup_errors: int = 0
    complete: bool = False
    note: str = ""


@dataclass
class RunState:
    """Shared by all levels: the deadline and why the run stopped early, if it did."""

    deadline: float  # perf_counter
    stop_reason: str | None = None
    server_gone: bool = False
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: str, server_gone: bool = False) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.server_gone = reason, server_gone
        self.stopped.set()


def level_specs(settings) -> list[LevelSpec]:
    """The levels a BenchSection asks for: one per concurrency, or one Poisson request-rate level."""
    if settings.request_rate is not None:
        rate = settings.request_rate
        count = settings.requests_per_level or max(8, 4 * math.ceil(rate))
        return [LevelSpec(f"rate={rate:g}/s", None, rate, count)]
    return [LevelSpec(f"c={c}", c, None, settings.requests_per_level or max(8, 4 * c))
            for c in settings.concurrency]


class Sweep:
    """Runs levels against one endpoint; `prompts` is a pool of distinct prompts used in turn."""

    def __init__(self, client, endpoint: Endpoint, counter: TokenCounter, prompts: list[Prompt], settings,
                 state: RunState, seed: int = 0):
        self.client, self.endpoint, self.counter = client, endpoint, counter
        self.prompts, self.settings, self.state = prompts, settings, state
        self.rng = random.Random(seed)
        self._next_prompt = 0

    def _take(self, count: int) -> list[Prompt]:
        taken = [self.prompts[(self._next_prompt + i) % len(self.prompts)] for i in range(count)]
        self._next_prompt += count
        return taken

    async def run_level(self, spec: LevelSpec) -> Level:
        level = Level(spec.label, spec.concurrency, spec.request_rate, spec.requests)
        if self.state.stop_reason:
            level.note = f"not run: {self.state.stop_reason}"
            return level
        warmup = Level(spec.label, spec.concurrency, spec.request_rate, self.settings.warmup)
        if self.settings.warmup:
            await self._drive(warmup, spec, self._take(self.settings.warmup))
            level.warmup_errors = sum(1 for r in warmup.results if not r.ok)
        if self.state.stop_reason:
            level.note = f"stopped during warm-up: {self.state.stop_reason}"
            return level
        await self._drive(level, spec, self._take(spec.requests))
        level.complete = self.state.stop_reason is None and len(level.results) == spec.requests
        if not level.complete:
            level.note = self.state.stop_reason or "not every request ran"
        return level

    async def _one(self, level: Level, prompt: Prompt) -> RequestResult:
        result = await send(self.client, self.endpoint, prompt.text, self.settings.output_len,
                            self.settings.request_timeout_s)
        result.prompt_tokens = prompt.tokens
        result.output_tokens = self.counter.output_tokens(result.text, len(result.chunk_times),
                                                          result.server_output_tokens)
        if result.error in CONNECTION_ERRORS and not await asyncio.to_thread(is_listening, self.endpoint.base_url):
            self.state.stop(f"the server at {self.endpoint.base_url} stopped answering during {level.label} "
                            f"({result.detail})", server_gone=True)
        return result

    async def _drive(self, level: Level, spec: LevelSpec, prompts: list[Prompt]) -> None:
        """Send `prompts` at the spec's concurrency or rate until done, the deadline, or a stop."""
        inflight: set[asyncio.Task] = set()
        slots = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None

        async def tracked(prompt: Prompt) -> None:
            started = time.perf_counter()
            try:
                level.results.append(await self._one(level, prompt))
            except asyncio.CancelledError:
                level.results.append(RequestResult(started=started, error="cancelled",
                                                   detail=self.state.stop_reason or "stopped",
                                                   e2e_s=time.perf_counter() - started))
                raise
            finally:
                if slots is not None:
                    slots.release()

        async def launch() -> None:
            for index, prompt in enumerate(prompts):
                if slots is not None:
                    await slots.acquire()
                elif index:
                    await asyncio.sleep(self.rng.expovariate(spec.request_rate))
                if self.state.stop_reason:
                    break
                task = asyncio.create_task(tracked(prompt))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            while inflight:
                await asyncio.wait(set(inflight))

        await self._bounded(launch(), inflight)

    async def _bounded(self, work: Awaitable[None], inflight: set[asyncio.Task]) -> None:
        driver = asyncio.ensure_future(work)
        stop = asyncio.create_task(self.state.stopped.wait())
        remaining = self.state.deadline - time.perf_counter()
        await asyncio.wait({driver, stop}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
        if not driver.done():
            if not self.state.stop_reason:
                self.state.stop(f"time budget of {self.settings.budget_s:g} s spent (bench.budget_s)")
            pending = [driver, *inflight]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)


async def run_levels(sweep: Sweep, specs: list[LevelSpec],
                     after_level: Callable[[list[Level]], None] | None = None) -> list[Level]:
    """Every level in order; `after_level` sees the levels so far (to save partial results)."""
    levels: list[Level] = []
    for spec in specs:
        levels.append(await sweep.run_level(spec))
        if after_level is not None:
            after_level(levels)
    return levels
