"""Where the perplexity text comes from, and the one-line errors when it cannot."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from orchestrator.errors import UserError
from orchestrator.stages.eval_text import load_eval_text


def test_builtin_reads_the_models_heldout_split(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "heldout.txt").write_text("held out words\n")
    text = load_eval_text("builtin", tmp_path)
    assert text.text == "held out words\n" and "heldout.txt" in text.source


def test_builtin_without_heldout_text_names_the_file(tmp_path):
    with pytest.raises(UserError, match="heldout.txt is missing"):
        load_eval_text("builtin", tmp_path)


def test_local_txt_is_taken_whole_and_jsonl_joins_text_fields(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("one\n\ntwo\n")
    assert load_eval_text(str(txt), None).text == "one\n\ntwo\n"
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "first"}\n\n{"text": "second"}\n')
    assert load_eval_text(str(jsonl), None).text == "first\n\nsecond"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.txt", None, "not found"),
    ("empty.txt", "  \n", "is empty"),
    ("bad.jsonl", "not json\n", "bad.jsonl:1: not a JSON object"),
    ("nofield.jsonl", '{"body": "x"}\n', "no text field"),
    ("data.csv", "a,b\n", "use wikitext-2, builtin"),
])
def test_bad_local_files_are_user_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_eval_text(str(path), None)


def test_wikitext2_joins_the_test_split(monkeypatch):
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return {"text": [" = Title = \n", " body \n"]}

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    text = load_eval_text("wikitext-2", None)
    assert calls == [(("Salesforce/wikitext", "wikitext-2-raw-v1"), {"split": "test"})]
    assert text.text == " = Title = \n\n\n body \n"


def test_wikitext2_offline_is_a_user_error_naming_the_alternatives(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wikitext' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(UserError, match="not reachable") as info:
        load_eval_text("wikitext-2", None)
    assert "builtin" in info.value.hint and ".txt" in info.value.hint
