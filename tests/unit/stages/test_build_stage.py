"""The build stage: argv from the recipe, and running it through the local runner.

trtllm-build cannot be installed here, so a stand-in script named trtllm-build is put on
PATH: it writes what trtllm-build writes (config.json, rank0.engine) into --output_dir, or
fails after printing a long log when told to.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from orchestrator.errors import StageFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import load_manifest
from orchestrator.recipe.loader import load_recipe
from orchestrator.runtime.local import LocalRunner
from orchestrator.stages.build import ENGINE_STAMP, build_argv, not_applicable, run_build
from tests.conftest import RECIPES

SPARK = RECIPES / "mixtral-8x7b-instruct-nvfp4-dgx-spark.yaml"
STANDIN_BUILD = """\
import argparse, os, sys
from pathlib import Path
parser = argparse.ArgumentParser()
parser.add_argument("--checkpoint_dir")
parser.add_argument("--output_dir")
args, _ = parser.parse_known_args()
print("stand-in trtllm-build: argv", " ".join(sys.argv[1:]), flush=True)
fail = os.environ.get("STANDIN_BUILD_FAIL")
if fail:
    for i in range(50):
        print(f"[TRT] building layer {i}", flush=True)
    print("[TRT] ERROR: out of memory (simulated)", flush=True)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "half-written.engine").write_bytes(b"x")
    sys.exit(int(fail))
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "config.json").write_text("{}")
(out / "rank0.engine").write_bytes(b"e" * 1000)
print("stand-in trtllm-build: done", flush=True)
"""


@pytest.fixture
def standin_build(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "standin_build.py"
    script.write_text(STANDIN_BUILD)
    exe = bin_dir / "trtllm-build"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("STANDIN_BUILD_FAIL", raising=False)


@pytest.fixture
def recipe(tmp_path):
    workdir = tmp_path / "work"
    (workdir / "checkpoint-trtllm").mkdir(parents=True)
    (workdir / "checkpoint-trtllm" / "config.json").write_text("{}")
    return load_recipe(SPARK, [f"workdir={workdir}", "runtime=local"])


def test_argv_builds_into_the_partial_dir_with_the_format_plugin():
    argv = build_argv(load_recipe(SPARK))
    assert argv[:5] == ["trtllm-build", "--checkpoint_dir", "work/mixtral-8x7b-instruct-nvfp4/checkpoint-trtllm",
                        "--output_dir", "work/mixtral-8x7b-instruct-nvfp4/.engine.partial"]
    assert argv[argv.index("--gemm_plugin") + 1] == "nvfp4"
    fp8 = build_argv(load_recipe(RECIPES / "mixtral-8x7b-instruct-fp8-h100.yaml"))
    assert fp8[fp8.index("--gemm_plugin") + 1] == "auto" and fp8[fp8.index("--workers") + 1] == "2"


def test_argv_optional_flags_and_extra_flags_render_per_type():
    argv = build_argv(load_recipe(SPARK, [
        "build.moe_plugin=bfloat16", "build.use_fp8_context_fmha=false", "build.kv_cache_type=paged",
        "build.extra_flags={strip_plan: true, weight_sparsity: false, multiple_profiles: true, tokens_per_block: 64}"]))
    tail = argv[argv.index("--workers") + 2:]
    assert tail == ["--moe_plugin", "bfloat16", "--use_fp8_context_fmha", "disable", "--kv_cache_type", "paged",
                    "--strip_plan", "--multiple_profiles", "enable", "--tokens_per_block", "64"]


def test_argv_paths_are_mapped_as_the_runner_sees_them():
    argv = build_argv(load_recipe(SPARK), path_in_runtime=lambda p: Path("/workspace") / p.name)
    assert argv[2] == "/workspace/checkpoint-trtllm" and argv[4] == "/workspace/.engine.partial"


def test_not_applicable_on_cpu_and_for_pytorch():
    assert "not applicable on platform cpu" in not_applicable(load_recipe(RECIPES / "tiny-mixtral-nvfp4-cpu.yaml"))
    assert "build.backend: pytorch" in not_applicable(load_recipe(RECIPES / "mixtral-8x7b-instruct-nvfp4-b200.yaml"))
    assert not_applicable(load_recipe(SPARK)) is None


def _build_command(recipe, **kwargs):
    """What `orchestrator build` runs: run_build inside the pipeline's standalone stage (lock, manifest)."""
    from orchestrator.pipeline.execute import run_standalone

    return run_standalone(recipe, "build", lambda: run_build(recipe, LocalRunner(echo=kwargs.pop("echo", False)),
                                                             **kwargs))


def test_build_with_standin_renames_engine_and_records_how(standin_build, recipe, capsys):
    layout = WorkdirLayout(recipe.resolved_workdir)
    outcome = _build_command(recipe, echo=True)
    assert not outcome.skipped and outcome.engine == layout.engine
    assert (layout.engine / "rank0.engine").is_file() and not (layout.root / ".engine.partial").exists()
    stamp = json.loads((layout.engine / ENGINE_STAMP).read_text())
    assert stamp["argv"] == outcome.argv and stamp["tensorrt_llm"] == "1.2.0rc6" and stamp["runtime"] == "local"
    log = layout.log("build").read_text()
    assert log.startswith("$ trtllm-build --checkpoint_dir") and "stand-in trtllm-build: done" in log
    assert "stand-in trtllm-build: done" in capsys.readouterr().out  # streamed, not only logged
    record = load_manifest(layout.manifest).stages["build"]
    assert record.status == "done" and record.artifacts["engine"]["bytes"] > 1000 and record.fingerprint
    assert record.versions["tensorrt_llm"] == "1.2.0rc6" and record.metrics["skipped"] is False

    again = _build_command(recipe)
    assert again.skipped and load_manifest(layout.manifest).stages["build"].metrics["skipped"] is True
    forced = _build_command(recipe, force=True)
    assert not forced.skipped


def test_failed_build_leaves_no_engine_and_shows_the_last_30_lines(standin_build, recipe, monkeypatch):
    layout = WorkdirLayout(recipe.resolved_workdir)
    monkeypatch.setenv("STANDIN_BUILD_FAIL", "7")
    with pytest.raises(StageFailed) as info:
        _build_command(recipe)
    assert info.value.exit_code == 1 and "exited with code 7" in info.value.message
    assert len(info.value.details) == 30 and info.value.details[-1].endswith("out of memory (simulated)")
    assert not layout.engine.exists() and not (layout.root / ".engine.partial").exists()
    assert load_manifest(layout.manifest).stages["build"].status == "failed"


def test_failed_rebuild_keeps_the_previous_engine(standin_build, recipe, monkeypatch):
    layout = WorkdirLayout(recipe.resolved_workdir)
    run_build(recipe, LocalRunner(echo=False))
    monkeypatch.setenv("STANDIN_BUILD_FAIL", "1")
    with pytest.raises(StageFailed):
        run_build(recipe, LocalRunner(echo=False), force=True)
    assert (layout.engine / "rank0.engine").is_file()


def test_missing_checkpoint_is_a_user_error(tmp_path):
    recipe = load_recipe(SPARK, [f"workdir={tmp_path}", "runtime=local"])
    with pytest.raises(UserError, match="no TensorRT-LLM checkpoint"):
        run_build(recipe, LocalRunner())


def test_cli_build_on_cpu_is_not_applicable(cli):
    result = cli("build", RECIPES / "tiny-mixtral-nvfp4-cpu.yaml")
    assert result.exit_code == 2 and "not applicable on platform cpu" in result.output


def test_cli_build_without_trtllm_or_docker_exits_2_in_one_line(cli, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = cli("build", SPARK, f"workdir={recipe.resolved_workdir}")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: trtllm-build is not on PATH")
    assert "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6" in lines[0] and "runtime: local" in lines[0]


def test_cli_build_runs_the_standin(cli, standin_build, recipe):
    result = cli("build", SPARK, f"workdir={recipe.resolved_workdir}", "runtime=local")
    assert result.exit_code == 0, result.output
    assert f"engine: {recipe.resolved_workdir / 'engine'}" in result.output
