"""Prompts of exactly N tokens, and output tokens counted from what the server streamed.

With the model's tokenizer (transformers AutoTokenizer, imported lazily) a prompt is
fitted token by token until the server-side count — BOS included for completions,
the chat template included for chat — is exactly N, and output tokens are counted by
re-tokenizing the streamed text. Without one, prompts are N common words (about N
tokens) and output is counted from the server's usage report, else one token per
SSE chunk; bench.json says which method was used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

# Common English words: prompts made of them tokenize predictably with any tokenizer.
WORDS = (
    "the of and to in is was that for on with as by at from his her they this have had not are but be "
    "which one all were we when there can an your said what out about so up time if them some would "
    "other into has more two like him see could no make than first been its who now people my made over "
    "did down only way find use may water long little very after words called just where most know get "
    "through back much before go good new write our used me man too any day same right look think also "
    "around another came come work three word must because does part even place well such here take why "
    "help put different away again off went old number great tell men say small every found still between "
    "name should home big give air line set own under read last never us left end along while might next "
    "sound below saw something thought both few those always show large often together asked house world"
).split()

MAX_FIT_STEPS = 12


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int | None  # as the server counts them; None without a tokenizer


def load_tokenizer(path: Path | None, *, required: bool = False):
    """AutoTokenizer from a local directory, or None when there is none (UserError if `required`)."""
    if path is None:
        return None
    if not (path / "tokenizer_config.json").is_file() and not (path / "tokenizer.json").is_file():
        if required:
            raise UserError(f"--tokenizer {path}: no tokenizer.json or tokenizer_config.json there")
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a broken tokenizer only degrades the bench, unless asked for
        if required:
            raise UserError(f"--tokenizer {path}: cannot load it: {exc}") from None
        return None


class TokenCounter:
    """Counts tokens as the server sees them, with the model's tokenizer when there is one."""

    def __init__(self, tokenizer: Any | None, source: str | None = None):
        self.tokenizer = tokenizer
        self.source = source

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_tokens(self, text: str, api: str) -> int | None:
        if self.tokenizer is None:
            return None
        if api == "chat" and self.has_chat_template():
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                     add_generation_prompt=True, tokenize=True)
            return len(ids)
        return len(self.tokenizer(text)["input_ids"])

    def prompt_method(self, api: str) -> str:
        if self.tokenizer is None:
            return "approximate: N common words (no tokenizer found)"
        if api == "chat" and self.has_chat_template():
            return f"exact: chat template applied, tokenizer {self.source}"
        if api == "chat":
            return f"approximate: tokenizer {self.source} has no chat template, template tokens not counted"
        return f"exact: tokenizer {self.source} (special tokens included)"

    def output_tokens(self, text: str, chunks: int, server_count: int | None) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if server_count is not None:
            return server_count
        return chunks

    def output_method(self, server_reported: bool) -> str:
        if self.tokenizer is not None:
            return f"tokenizer: streamed text re-tokenized with {self.source}"
        if server_reported:
            return "server usage.completion_tokens (no tokenizer found)"
        return "SSE chunks: one token per text chunk assumed (no tokenizer found, no usage from the server)"


def build_prompts(counter: TokenCounter, n_tokens: int, api: str, count: int, seed: int = 0) -> list[Prompt]:
    """`count` distinct prompts of `n_tokens` tokens each (distinct so no prefix cache can help)."""
    return [_one_prompt(counter, n_tokens, api, random.Random(seed * 1_000_003 + i)) for i in range(count)]


def _one_prompt(counter: TokenCounter, n_tokens: int, api: str, rng: random.Random) -> Prompt:
    words = [rng.choice(WORDS) for _ in range(max(8, 2 * n_tokens))]
    tok = counter.tokenizer
    if tok is None:
        return Prompt(" ".join(words[:n_tokens]), None)
    ids = tok(" ".join(words), add_special_tokens=False)["input_ids"]
    overhead = counter.prompt_tokens("", api) or 0
    keep = max(0, min(len(ids), n_tokens - overhead))
    best: Prompt | None = None
    for _ in range(MAX_FIT_STEPS):
        text = tok.decode(ids[:keep], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        measured = counter.prompt_tokens(text, api) or 0
        if best is None or abs(measured - n_tokens) < abs((best.tokens or 0) - n_tokens):
            best = Prompt(text, measured)
        if measured == n_tokens:
            break
        nxt = max(0, min(len(ids), keep + n_tokens - measured))
        if nxt == keep:
            break
        keep = nxt
    assert best is not None
    return best
