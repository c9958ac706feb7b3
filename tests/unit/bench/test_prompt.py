"""Prompts of exactly N tokens with the model's tokenizer; the fallback without one says it is approximate."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.models import BUILTIN_MODELS
from orchestrator.stages.bench.prompt import TokenCounter, build_prompts, load_tokenizer

TINY = BUILTIN_MODELS["tiny-mixtral"]


@pytest.fixture(scope="module")
def counter():
    if not (TINY / "tokenizer.json").is_file():
        pytest.skip("the builtin tiny Mixtral is not in this checkout")
    return TokenCounter(load_tokenizer(TINY), str(TINY))


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize("n_tokens", [16, 64, 300])
def test_prompts_have_exactly_n_tokens_as_the_server_counts_them(counter, api, n_tokens):
    prompts = build_prompts(counter, n_tokens, api, count=5, seed=3)
    assert len({p.text for p in prompts}) == 5  # distinct: no prefix cache can serve them
    tok = counter.tokenizer
    for prompt in prompts:
        if api == "chat":  # the chat template the server applies is part of the count
            ids = tok.apply_chat_template([{"role": "user", "content": prompt.text}], add_generation_prompt=True,
                                          tokenize=True)
        else:  # BOS included, as a completions server tokenizes
            ids = tok(prompt.text)["input_ids"]
        assert prompt.tokens == len(ids) == n_tokens
    assert counter.prompt_method(api).startswith("exact")


def test_output_is_counted_by_retokenizing_the_streamed_text(counter):
    text = " In the beginning God created the heaven and the earth."
    expected = len(counter.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert counter.output_tokens(text, chunks=1, server_count=None) == expected
    assert counter.output_method(server_reported=True).startswith("tokenizer")


def test_without_a_tokenizer_prompts_are_words_and_output_is_chunks():
    counter = TokenCounter(None)
    (prompt,) = build_prompts(counter, 20, "completions", count=1)
    assert len(prompt.text.split()) == 20 and prompt.tokens is None
    assert counter.prompt_method("completions").startswith("approximate")
    assert counter.output_tokens("a b c", chunks=3, server_count=None) == 3
    assert counter.output_tokens("a b c", chunks=3, server_count=7) == 7
    assert counter.output_method(server_reported=False).startswith("SSE chunks")


def test_a_given_tokenizer_dir_without_tokenizer_is_a_user_error(tmp_path):
    assert load_tokenizer(tmp_path) is None
    with pytest.raises(UserError, match="no tokenizer.json"):
        load_tokenizer(tmp_path, required=True)
