"""`orchestrator bench` end to end against the stand-in OpenAI server (real sockets, not an engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.manifest import load_manifest
from tests.conftest import REPO
from tests.unit.bench.conftest import free_port

TINY = REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml"


def _recipe_on_port(tmp_path: Path, port: int) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["serve"]["port"] = port
    data["workdir"] = str(tmp_path / "work")
    data["bench"] = {"concurrency": [1, 2], "input_len": 16, "output_len": 8, "requests_per_level": 4,
                     "warmup": 1, "request_timeout_s": 10, "budget_s": 60}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_nothing_listening_exits_2_with_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    exe = Path(sys.executable).parent / "orchestrator"
    done = subprocess.run([str(exe), "bench", "--url", url, "--workdir", str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: nothing is listening at {url}: start it with "
                                                "`orchestrator serve RECIPE --detach` or pass --url of a running "
                                                "OpenAI-compatible server"]
    assert not (tmp_path / "bench.json").exists()


def test_recipe_bench_uses_the_served_endpoint_and_name(cli, standin, tmp_path):
    port = free_port()
    server = standin(port=port)
    result = cli("bench", _recipe_on_port(tmp_path, port))
    assert result.exit_code == 0, result.output
    assert "c=1" in result.output and "tok/s aggregate" in result.output
    assert "CPU reference engine (transformers serve)" in result.output  # platform cpu: labelled as reference
    data = json.loads((tmp_path / "work" / "bench.json").read_text())
    assert data["complete"] and data["recipe"] == "tiny-mixtral-nvfp4-cpu"
    assert server.requests[-1]["model"] == "tiny-mixtral-nvfp4-cpu"  # serve.served_model_name default
    assert data["hardware"].startswith("CPU: ")
    assert (tmp_path / "work" / "bench.png").is_file()


def test_serve_state_file_overrides_the_recipe_port(cli, standin, tmp_path):
    server = standin()
    recipe = _recipe_on_port(tmp_path, free_port())  # nothing there; the state file points at the stand-in
    (tmp_path / "work").mkdir()
    # As orchestrator.runtime.serve_process.write_state writes it: url is the OpenAI base (…/v1).
    (tmp_path / "work" / "serve.json").write_text(json.dumps({"base_url": server.url, "url": server.url + "/v1",
                                                              "model": "m1", "runtime": "local"}))
    result = cli("bench", recipe, "bench.concurrency=[1]")
    assert result.exit_code == 0, result.output
    assert server.requests[-1]["model"] == "m1"


def test_url_only_takes_bench_overrides_and_json(cli, standin, tmp_path):
    server = standin()
    result = cli("bench", "--url", server.url, "--workdir", tmp_path, "--json", "bench.concurrency=[3]",
                 "bench.requests_per_level=3", "bench.warmup=0", "bench.output_len=5")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [lv["label"] for lv in data["levels"]] == ["c=3"] and data["levels"][0]["completed"] == 3
    assert data["engine"].startswith("unknown")


def test_url_only_rejects_non_bench_overrides(cli, tmp_path):
    result = cli("bench", "--url", "http://127.0.0.1:9", "--workdir", tmp_path, "serve.port=1")
    assert result.exit_code == 2 and "only bench.* overrides" in result.output


def test_a_server_without_the_openai_api_is_a_user_error(cli, standin, tmp_path):
    server = standin(apis=())
    result = cli("bench", "--url", server.url, "--workdir", tmp_path)
    assert result.exit_code == 2
    assert "accepted no OpenAI streaming request" in result.output


def test_server_killed_mid_run_leaves_partial_results(cli, tmp_path):
    port = free_port()
    # The stand-in process exits while streaming its 7th request: probe + 4 at c=1 + the 2nd pair at c=2.
    proc = subprocess.Popen([sys.executable, "-m", "tests.unit.bench.standin_openai", "--port", str(port),
                             "--exit-after", "7"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert "listening" in proc.stdout.readline()
        result = cli("bench", _recipe_on_port(tmp_path, port), "bench.warmup=0")
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 1, result.output
    assert "bench incomplete" in result.output and "stopped answering" in result.output
    data = json.loads((tmp_path / "work" / "bench.json").read_text())
    assert data["complete"] is False and data["server_gone"] is True
    first, second = data["levels"]
    assert first["complete"] is True and first["completed"] == 4
    assert second["complete"] is False and second["completed"] < 4
    assert "INCOMPLETE" in result.output
    record = load_manifest(tmp_path / "work" / "manifest.json").stages["bench"]
    assert record.status == "failed" and "stopped answering" in record.reason
