"""Crash safety for real: SIGKILL the pipeline in the middle of quantize and of convert, run again,
and the final artifacts are byte-identical to an uninterrupted run (same seed)."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

RECIPE = REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml"
EXE = Path(sys.executable).with_name("orchestrator")


def _run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "run", RECIPE, "-w", workdir, "--until", "convert", "--quiet", *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def _kill_when(workdir: Path, marker: str, *extra: str) -> None:
    """Start a run and SIGKILL it as soon as `marker` (a partial artifact) appears."""
    proc = subprocess.Popen([EXE, "run", RECIPE, "-w", workdir, "--until", "convert", "--quiet", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 600
    try:
        while not (workdir / marker).exists():
            assert proc.poll() is None, "run ended before reaching the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for name in ("checkpoint-hf", "checkpoint-trtllm"):
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_sigkill_in_quantize_and_convert_then_rerun_is_byte_identical(tmp_path):
    workdir = tmp_path / "work"
    first = _run(workdir)
    assert first.returncode == 0, first.stderr
    reference = _digests(workdir)
    assert any(k.endswith(".safetensors") for k in reference)
    shutil.rmtree(workdir)  # same path again: provenance files name the workdir

    _kill_when(workdir, ".checkpoint-hf.partial")
    assert not (workdir / "checkpoint-hf").exists(), "a killed quantize must not leave a final checkpoint"
    again = _run(workdir)
    assert again.returncode == 0, again.stderr
    assert _digests(workdir) == reference

    _kill_when(workdir, ".checkpoint-trtllm.partial", "--force", "convert")
    manifest = (workdir / "manifest.json").read_text()
    assert '"running"' in manifest  # the killed stage is recorded as unfinished, never as done
    final = _run(workdir)
    assert final.returncode == 0, final.stderr
    assert _digests(workdir) == reference
    assert not list(workdir.glob(".*.partial"))


def test_fingerprints_follow_the_recipe(tmp_path):
    """Changing calibration re-runs quantize and later stages; changing serve.port re-runs nothing."""
    from orchestrator.layout import WorkdirLayout
    from orchestrator.pipeline.graph import ENGINE_STAGES, STAGES, StageContext, stage_fingerprint
    from orchestrator.recipe.loader import load_recipe

    def fingerprints(*overrides):
        recipe = load_recipe(RECIPE, [f"workdir={tmp_path}", *overrides])
        ctx = StageContext(recipe, WorkdirLayout(recipe.resolved_workdir))
        fps: dict[str, str | None] = {}
        for name in ENGINE_STAGES:
            fps[name] = stage_fingerprint(STAGES[name], ctx, fps)
        return fps

    base = fingerprints()
    samples = fingerprints("quantize.calibration.samples=32")
    port = fingerprints("serve.port=9123")
    assert port == base
    changed = {name for name in ENGINE_STAGES if samples[name] != base[name]}
    assert changed == {"quantize", "convert", "build", "verify", "eval", "card"}


def test_full_default_run_then_rerun_does_nothing(tmp_path):
    """`make engine`'s job: every stage of the embedded default, then a re-run that only checks."""
    import json

    workdir = tmp_path / "engine"
    first = subprocess.run([EXE, "run", RECIPE, "-w", workdir], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "perplexity (builtin" in first.stdout and "passes the gate" in first.stdout
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert {n: s["status"] for n, s in manifest["stages"].items()} == {
        "fetch": "skipped", "quantize": "done", "convert": "done", "build": "skipped", "verify": "done",
        "eval": "done", "card": "done"}
    assert (workdir / "checkpoint-hf" / "README.md").is_file()
    again = subprocess.run([EXE, "run", RECIPE, "-w", workdir], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr
    for stage in ("quantize", "convert", "verify", "eval", "card"):
        assert f"up to date {stage}" in again.stderr, again.stderr


def test_standalone_quantize_counts_for_run(tmp_path):
    """`orchestrator quantize` records the same fingerprint `run` computes: no second calibration."""
    workdir = tmp_path / "w"
    done = subprocess.run([EXE, "quantize", RECIPE, "-w", workdir, "-q"], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([EXE, "run", RECIPE, "-w", workdir, "--until", "quantize"], capture_output=True, text=True,
                           cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "up to date quantize" in again.stderr
