"""The executor's skip/resume logic over small real stages that write files (no TRT-LLM, no torch)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from orchestrator.errors import StageFailed
from orchestrator.pipeline import execute, graph
from orchestrator.pipeline.execute import RunOptions, run_pipeline
from orchestrator.pipeline.graph import StageDef, StageOutcome
from orchestrator.recipe.loader import apply_overrides, validate_recipe
from tests.conftest import RECIPES

BASE = yaml.safe_load((RECIPES / "tiny-mixtral-nvfp4-cpu.yaml").read_text())


class Recorder(execute.Events):
    def __init__(self):
        self.ends = []

    def stage_end(self, name, status, detail=""):
        self.ends.append((name, status))


@pytest.fixture
def stages(monkeypatch):
    """Three file-writing stages: a -> b -> c; a depends on quantize settings, c on serve.port (never)."""
    runs = []

    def make(name, out, config):
        def execute_stage(ctx):
            runs.append(name)
            if ctx.shared.get("fail") == name:
                raise StageFailed(f"{name} broke")
            path = ctx.layout.root / out
            path.write_text(f"{name}:{config(ctx.recipe)}")
            return StageOutcome({"n": len(runs)}, {out: path})
        return StageDef(name, (), config, lambda ctx: None, lambda r: {}, lambda r: None,
                        lambda lay: [lay.root / out], execute_stage)

    defs = {
        "a": make("a", "a.txt", lambda r: r.quantize.calibration.samples),
        "b": make("b", "b.txt", lambda r: r.checkpoint.tp),
        "c": make("c", "c.txt", lambda r: r.name),
    }
    defs["b"] = StageDef(**{**defs["b"].__dict__, "upstream": ("a",)})
    defs["c"] = StageDef(**{**defs["c"].__dict__, "upstream": ("b",)})
    monkeypatch.setattr(graph, "STAGES", defs)
    monkeypatch.setattr(execute, "STAGES", defs)
    monkeypatch.setattr(execute, "ENGINE_STAGES", tuple(defs))
    return runs


def recipe(tmp_path, *overrides):
    data = copy.deepcopy(BASE)
    apply_overrides(data, [f"workdir={tmp_path / 'work'}", *overrides])
    return validate_recipe(data)


def test_second_run_does_nothing(tmp_path, stages):
    run_pipeline(recipe(tmp_path))
    assert stages == ["a", "b", "c"]
    events = Recorder()
    run_pipeline(recipe(tmp_path), events=events)
    assert stages == ["a", "b", "c"]
    assert {status for _, status in events.ends} == {"up to date"}


def test_changed_setting_reruns_that_stage_and_downstream_only(tmp_path, stages):
    run_pipeline(recipe(tmp_path))
    run_pipeline(recipe(tmp_path, "checkpoint.tp=1", "quantize.calibration.samples=32"))
    assert stages == ["a", "b", "c", "a", "b", "c"]
    stages.clear()
    run_pipeline(recipe(tmp_path, "quantize.calibration.samples=32", "serve.port=9999"))
    assert stages == []


def test_damaged_output_is_rebuilt(tmp_path, stages):
    run_pipeline(recipe(tmp_path))
    (tmp_path / "work" / "b.txt").write_text("truncated")
    run_pipeline(recipe(tmp_path))
    assert stages == ["a", "b", "c", "b"]


def test_force_from_until(tmp_path, stages):
    run_pipeline(recipe(tmp_path), RunOptions(until="a"))
    assert stages == ["a"]
    run_pipeline(recipe(tmp_path), RunOptions(force={"a"}))
    assert stages == ["a", "a", "b", "c"]
    run_pipeline(recipe(tmp_path), RunOptions(from_stage="b"))
    assert stages[-2:] == ["b", "c"]


def test_failure_is_recorded_and_earlier_good_artifacts_kept(tmp_path, stages, monkeypatch):
    run_pipeline(recipe(tmp_path))
    good = (tmp_path / "work" / "a.txt").read_text()
    original = graph.StageContext.__init__

    def failing_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.shared["fail"] = "b"

    monkeypatch.setattr(graph.StageContext, "__init__", failing_init)
    with pytest.raises(StageFailed):
        run_pipeline(recipe(tmp_path, "checkpoint.tp=1", "quantize.calibration.samples=16"))
    manifest = json.loads((tmp_path / "work" / "manifest.json").read_text())
    assert manifest["stages"]["b"]["status"] == "failed" and "b broke" in manifest["stages"]["b"]["reason"]
    assert (tmp_path / "work" / "a.txt").read_text() != good  # a re-ran with the new setting
    assert (tmp_path / "work" / "c.txt").exists()  # c's previous artifact untouched


def test_unknown_stage_name_is_a_user_error(tmp_path, stages):
    from orchestrator.errors import UserError

    with pytest.raises(UserError, match="--until quantise"):
        run_pipeline(recipe(tmp_path), RunOptions(until="quantise"))


def test_stage_lists_agree():
    """The recipe's stage names (run.until, plan) and the pipeline graph are one list."""
    from orchestrator.pipeline.graph import ENGINE_STAGES as GRAPH
    from orchestrator.recipe.root import STAGE_ORDER

    assert STAGE_ORDER[:len(GRAPH)] == GRAPH
    assert STAGE_ORDER[len(GRAPH):] == ("serve", "bench")
