"""Calibration data: text sources, seeded selection, the data hash, the forward loop's batch search."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from orchestrator.errors import UserError  # noqa: E402
from orchestrator.stages.calibration import CalibrationData, ForwardLoop, load_texts, select_samples  # noqa: E402


class WordTokenizer:
    """Stand-in tokenizer: one id per word (hash-free, so the test is deterministic)."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [len(word) * 7 + ord(word[0]) for word in text.split()]}


def _corpus(tmp_path, lines=60):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 97}" for j in range(20)) for i in range(lines)))
    return path


def test_same_seed_same_samples_and_hash(tmp_path):
    path = _corpus(tmp_path)
    picks = [select_samples(load_texts(str(path), None)[0], WordTokenizer(), 8, 16, seed, str(path))
             for seed in (0, 0, 1)]
    assert picks[0].sha256 == picks[1].sha256 and torch.equal(picks[0].input_ids, picks[1].input_ids)
    assert picks[0].sha256 != picks[2].sha256
    assert picks[0].input_ids.shape == (8, 16) and picks[0].tokens == 128


def test_short_text_gives_what_it_has_or_a_clear_error(tmp_path):
    path = _corpus(tmp_path, lines=2)  # 42 tokens with EOS: two windows of 16
    data = select_samples(load_texts(str(path), None)[0], WordTokenizer(), 8, 16, 0, str(path))
    assert data.samples == 2 and data.windows_available == 2
    with pytest.raises(UserError, match="fewer than one sample"):
        select_samples(load_texts(str(path), None)[0], WordTokenizer(), 8, 1000, 0, str(path))


def test_text_files_split_by_blank_lines_else_by_line(tmp_path):
    paragraphs = tmp_path / "p.txt"
    paragraphs.write_text("a b\nc d\n\ne f\n")
    assert list(load_texts(str(paragraphs), None)[0]) == ["a b\nc d", "e f"]
    lines = tmp_path / "l.txt"
    lines.write_text("a b\nc d\n")
    assert list(load_texts(str(lines), None)[0]) == ["a b", "c d"]


def test_jsonl_reads_the_text_field_and_names_bad_lines(tmp_path):
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"content": "two"}) + "\n")
    assert list(load_texts(str(good), None)[0]) == ["one", "two"]
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"id": 3}) + "\n")
    with pytest.raises(UserError, match="b.jsonl:2"):
        load_texts(str(bad), None)


def test_builtin_reads_the_models_corpus(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "calibration.txt").write_text("x y\nz\n")
    documents, described = load_texts("builtin", tmp_path)
    assert list(documents) == ["x y", "z"] and described.startswith("builtin")
    with pytest.raises(UserError, match="builtin"):
        load_texts("builtin", None)


def test_auto_batch_halves_on_out_of_memory_and_keeps_the_size():
    data = CalibrationData(torch.zeros(10, 4, dtype=torch.int64), "x", "0" * 64, 10)
    seen = []

    def model(input_ids, **kwargs):
        if len(input_ids) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate")
        seen.append(len(input_ids))

    loop = ForwardLoop(data, "cpu", None, None)
    loop(model)
    loop(model)
    assert loop.batch_size == 2 and sum(seen) == 20 and loop.calls == 2


def test_fixed_batch_does_not_hide_errors():
    data = CalibrationData(torch.zeros(4, 4, dtype=torch.int64), "x", "0" * 64, 4)

    def model(input_ids, **kwargs):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        ForwardLoop(data, "cpu", 4, None)(model)
