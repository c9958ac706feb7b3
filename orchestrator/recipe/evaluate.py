"""`eval:` — the accuracy gate (perplexity of the exported checkpoint against the original)."""

from __future__ import annotations

from pydantic import Field

from orchestrator.recipe.base import Section


class PerplexitySection(Section):
    enabled: bool = Field(default=True, description="Run the perplexity comparison in `run`.")
    dataset: str = Field(
        default="wikitext-2",
        description="wikitext-2 (through `datasets`), 'builtin' (the embedded model's held-out text) or a local "
        ".txt/.jsonl file.",
    )
    seq_len: int = Field(default=512, gt=0, description="Tokens per evaluation window.")
    stride: int = Field(default=512, gt=0, description="Tokens between window starts (= seq_len: no overlap).")
    max_tokens: int | None = Field(default=None, gt=0, description="Evaluate at most this many tokens of the text.")
    max_ratio: float = Field(default=1.05, ge=1.0, description="Gate: quantized / original perplexity must be <= this.")


class EvalSection(Section):
    perplexity: PerplexitySection = Field(default_factory=PerplexitySection, description="Perplexity gate.")
