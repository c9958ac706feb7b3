"""`bench:` — the endpoint load test."""

from __future__ import annotations

from pydantic import Field

from orchestrator.recipe.base import Section


class BenchSection(Section):
    concurrency: list[int] = Field(default_factory=lambda: [1, 4, 16], min_length=1,
                                   description="Concurrency levels to sweep.")
    request_rate: float | None = Field(
        default=None, gt=0, description="Requests per second (Poisson); when set, replaces the concurrency sweep."
    )
    input_len: int = Field(default=128, gt=0, description="Prompt length in tokens (built with the model's tokenizer).")
    output_len: int = Field(default=100, gt=0, description="Output tokens per request.")
    requests_per_level: int | None = Field(
        default=None, gt=0, description="Requests per level; default 4 x concurrency (at least 8)."
    )
    warmup: int = Field(default=2, ge=0, description="Warm-up requests per level, excluded from results.")
    request_timeout_s: float = Field(default=300, gt=0, description="Timeout of each request.")
    budget_s: float = Field(default=900, gt=0, description="Wall-time budget of the whole run; stops when spent.")
