"""quantize.parallel=fsdp2 for real on CPU: torchrun, two FSDP2 ranks, modelopt's amax sync and sharded export.

Stand-in: this CPU machine plays a 2-GPU host. `calibration_gpus` (the GPU count) and
`resolve_memory` (which would say "cpu" here) are patched; the ranks talk gloo where a GPU
host uses NCCL. Everything else is the real path: the stage writes the job, torchrun starts
two processes, each builds the model on the meta device, shards it with `fully_shard`, gets
its weights from rank 0, calibrates its share of the batches with modelopt, and rank 0 writes
the export and the quantizer state.

Max calibration over the ranks' shares, reduced with a max, equals max calibration over all
batches, and each batch is the same batch as in one process: so the 2-rank checkpoint must equal
the single-process one bit for bit, and so must the TRT-LLM checkpoint convert restores from
the ranks' saved state (no model handed over in memory).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.tiny_mixtral import (
    build_tiny_mixtral,
    checkpoint_tensors,
    same_bits,
    tiny_recipe,
    write_corpus,
)

pytestmark = pytest.mark.integration

pytest.importorskip("modelopt.torch.quantization")

# 24 samples in batches of 8: 3 batches over 2 ranks, so rank 1 repeats batch 0 in the second round.
SAMPLES, BATCH = 24, 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from orchestrator.errors import StageFailed
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages import quantize as stage

    root = tmp_path_factory.mktemp("fsdp")
    model_dir, corpus = build_tiny_mixtral(root / "model"), write_corpus(root / "calibration.txt")

    def recipe(name):
        data = tiny_recipe(model_dir, corpus, root / name)
        data["quantize"]["calibration"].update(samples=SAMPLES, batch_size=BATCH)
        return validate_recipe(data)

    one = stage.quantize(recipe("one"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stage, "calibration_gpus", lambda _recipe: 2)
        patch.setattr(stage, "resolve_memory", lambda *_args: "fsdp2")
        heard = []
        try:
            two = stage.quantize(recipe("two"), progress=lambda *call: heard.append(call))
        except StageFailed as failed:  # the ranks' log is the only account of what went wrong: show it
            pytest.fail(f"{failed}\n" + "\n".join(failed.details or []), pytrace=False)
    return {"one": one, "two": two, "recipe_one": recipe("one"), "recipe_two": recipe("two"), "heard": heard}


def test_two_ranks_export_the_single_process_checkpoint_bit_for_bit(runs):
    one, two = runs["one"], runs["two"]
    assert two.model is None  # the model lived in the ranks only
    a, b = checkpoint_tensors(one.checkpoint_dir), checkpoint_tensors(two.checkpoint_dir)
    assert sorted(a) == sorted(b) and len(a) > 100
    differing = [name for name in a if not same_bits(a[name], b[name])]
    assert differing == []
    for name in ("config.json", "hf_quant_config.json"):
        assert json.loads((one.checkpoint_dir / name).read_text()) == json.loads((two.checkpoint_dir / name).read_text())


def test_the_stage_records_how_the_ranks_ran(runs):
    two = runs["two"]
    sharded = two.sharded
    assert sharded["ranks"] == 2 and sharded["batches_per_rank"] == 2 and sharded["batch_size"] == BATCH
    assert len(sharded["peak_per_rank"]) == 2 and all(p["cpu_rss_gib"] > 0 for p in sharded["peak_per_rank"])
    assert two.calibration["memory"] == "fsdp2" and two.calibration["forward_passes"] == 4
    record = two.stage_record()
    assert record.metrics["sharded"]["ranks"] == 2
    provenance = json.loads((two.checkpoint_dir / "orchestrator.json").read_text())
    assert provenance["calibration"]["memory"] == "fsdp2"
    log = (two.checkpoint_dir.parent / "logs" / "quantize-ranks.log").read_text()
    assert "torch.distributed.run" in log and log.count("calibration batch 2/2") == 1  # rank 0 reports
    assert runs["heard"][-1] == ("calibration batches (each rank)", 2, 2)  # read from the log as it ran
    assert not (two.checkpoint_dir.parent / ".quantize-fsdp").exists()  # the job directory, spent


def test_convert_restores_the_ranks_state_to_the_same_trtllm_checkpoint(runs):
    from orchestrator.stages.convert import convert

    from_memory = convert(runs["recipe_one"], model=runs["one"].model)
    from_state = convert(runs["recipe_two"])
    assert not from_state.reused_model
    a, b = checkpoint_tensors(from_memory.checkpoint_dir), checkpoint_tensors(from_state.checkpoint_dir)
    assert sorted(a) == sorted(b)
    assert [name for name in a if not same_bits(a[name], b[name])] == []


def test_a_failing_rank_fails_the_stage_with_the_log_tail_and_leaves_no_result(tmp_path):
    import torch
    import yaml

    from orchestrator.errors import StageFailed
    from orchestrator.stages.quantize_fsdp import FsdpJob, run
    from tests.conftest import RECIPES

    recipe = yaml.safe_load((RECIPES / "tiny-mixtral-nvfp4-cpu.yaml").read_text())
    missing = tmp_path / "model-gone"  # e.g. deleted between the stage's checks and the ranks' start
    job = FsdpJob(recipe=recipe, model_path=str(missing), ranks=2, device="cpu", batch_size=1,
                  export_dir=str(tmp_path / "export"), state_dir=str(tmp_path / "state"), source={})
    with pytest.raises(StageFailed) as failure:
        run(job, torch.zeros((2, 4), dtype=torch.int64), tmp_path / "job", tmp_path / "ranks.log")
    assert "2 ranks failed" in failure.value.message and failure.value.details
    log = (tmp_path / "ranks.log").read_text()
    assert "[rank0]" in log and "[rank1]" in log and str(missing) in log
    assert not (tmp_path / "job" / "result.json").exists() and not (tmp_path / "export").exists()


def test_a_model_the_ranks_could_not_load_is_a_one_line_user_error_before_they_start(tmp_path):
    import torch

    from orchestrator.errors import UserError
    from orchestrator.stages.quantize_fsdp import empty_model

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError) as refused:
        empty_model(str(tmp_path), torch.bfloat16, False)
    assert refused.value.message.startswith(f"cannot load the model from {tmp_path}") and "\n" not in refused.value.message
