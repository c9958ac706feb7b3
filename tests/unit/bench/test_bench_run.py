"""run_bench against the stand-in OpenAI server (a real HTTP server in a thread, not an engine)."""

from __future__ import annotations

import json

from orchestrator.manifest import load_manifest
from orchestrator.stages.bench.run import run_bench
from orchestrator.stages.bench.target import resolve_target


def _run(server, settings, tmp_path, **kwargs):
    target = resolve_target(None, url=server.url, workdir=tmp_path)
    return run_bench(settings, target, **kwargs)


def test_sweep_writes_complete_results_with_fixed_length_requests(standin, settings, tmp_path):
    server = standin(eos_after=3)  # would stop at 3 tokens unless told to ignore EOS
    data = _run(server, settings(concurrency=[1, 2], requests_per_level=4, warmup=2, output_len=12), tmp_path)

    assert data["complete"] is True and data["incomplete_reason"] is None
    assert data["api"] == "completions" and data["model"] == "standin-model"
    assert data["output"]["fixed_length_method"].startswith("ignore_eos + min_tokens")
    assert [lv["label"] for lv in data["levels"]] == ["c=1", "c=2"]
    for level in data["levels"]:
        assert (level["requests"], level["completed"], level["errors"]) == (4, 4, 0)
        assert level["output_tokens_mean"] == 12.0  # counted from the stream: one token per SSE chunk here
        assert level["ttft_ms"]["p50"] > 0 and level["tok_s_aggregate"] > 0
    # 1 probe + 2 levels x (2 warm-up + 4 measured): warm-up and probe are sent but not counted.
    assert len(server.requests) == 1 + 2 * (2 + 4)
    sent = server.requests[-1]
    assert sent["ignore_eos"] is True and sent["min_tokens"] == 12 and sent["max_tokens"] == 12
    assert sent["stream"] is True
    assert len({r["prompt"] for r in server.requests[1:]}) == len(server.requests) - 1  # no prompt reused
    assert data["headline"]["tokens_per_s_c1"] > 0
    assert "scaled from output_len 12" in data["headline"]["latency_100_method"]

    on_disk = json.loads((tmp_path / "bench.json").read_text())
    assert on_disk["complete"] is True and on_disk["levels"] == data["levels"]
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    record = load_manifest(tmp_path / "manifest.json").stages["bench"]
    assert record.status == "done"
    assert record.metrics["tokens_per_s_c1"] == data["headline"]["tokens_per_s_c1"]
    assert record.metrics["levels"][1]["tok_s_aggregate"] == data["levels"][1]["tok_s_aggregate"]
    assert set(record.artifacts) == {"bench_json", "plot"}


def test_transformers_like_server_gets_chat_and_generation_config(standin, settings, tmp_path):
    # Like transformers serve 4.57: no /v1/completions, 422 on ignore_eos/min_tokens.
    server = standin(apis=("chat",), strict_keys=True, eos_after=3)
    data = _run(server, settings(concurrency=[1], output_len=10), tmp_path)

    assert data["complete"] and data["api"] == "chat"
    assert data["endpoint"].endswith("/v1/chat/completions")
    assert data["output"]["fixed_length_method"].startswith("generation_config")
    assert data["levels"][0]["output_tokens_mean"] == 10.0
    assert any("404" in line for line in data["probe"]) and any("422" in line for line in data["probe"])
    assert json.loads(server.requests[-1]["generation_config"]) == {"min_new_tokens": 10, "max_new_tokens": 10}


def test_server_usage_is_recorded_and_used_without_a_tokenizer(standin, settings, tmp_path):
    server = standin(send_usage=True)
    data = _run(server, settings(concurrency=[1]), tmp_path)
    assert data["output"]["count_method"].startswith("server usage")
    assert data["levels"][0]["server_output_tokens_mean"] == 12.0


def test_errors_are_counted_by_kind_not_hidden(standin, settings, tmp_path):
    server = standin(fail_every=3, stream_error_every=5)
    data = _run(server, settings(concurrency=[2], requests_per_level=12, warmup=0), tmp_path)
    level = data["levels"][0]
    assert level["errors"] > 0 and level["completed"] + level["errors"] == 12
    assert set(level["error_kinds"]) == {"http 500", "server error"}
    assert any("stand-in failure" in example for example in level["error_examples"])
    assert data["complete"] is True  # every request ran; the errors are results, shown as such


def test_request_timeout_bounds_a_hung_request(standin, settings, tmp_path):
    server = standin(hang_every=3, hang_s=30)
    data = _run(server, settings(concurrency=[2], requests_per_level=6, warmup=0, request_timeout_s=0.5),
                tmp_path)
    assert data["levels"][0]["error_kinds"].get("timeout", 0) >= 1


def test_budget_stops_the_run_and_marks_it_incomplete(standin, settings, tmp_path):
    server = standin(token_delay_s=0.05)  # 40 tokens take 2 s per request
    data = _run(server, settings(concurrency=[1, 2], output_len=40, requests_per_level=4, warmup=0, budget_s=3),
                tmp_path)
    assert data["complete"] is False and "time budget of 3 s spent" in data["incomplete_reason"]
    assert data["server_gone"] is False
    first = data["levels"][0]
    assert first["complete"] is False and first["cancelled"] + first["not_sent"] > 0
    assert data["levels"][1]["note"].startswith("not run")
    assert json.loads((tmp_path / "bench.json").read_text())["complete"] is False
    assert load_manifest(tmp_path / "manifest.json").stages["bench"].status == "done"  # bounded, not failed


def test_request_rate_mode_runs_one_poisson_level(standin, settings, tmp_path):
    server = standin()
    data = _run(server, settings(request_rate=40.0, requests_per_level=10, warmup=0), tmp_path)
    (level,) = data["levels"]
    assert level["label"] == "rate=40/s" and level["concurrency"] is None and level["completed"] == 10
    assert data["headline"]["reason"] == "concurrency 1 is not in the sweep"
    assert (tmp_path / "bench.png").is_file()
