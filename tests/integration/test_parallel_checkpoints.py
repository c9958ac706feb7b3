"""Real modelopt on the tiny Mixtral (CPU): tp, pp and ep TRT-LLM checkpoints verify and join back to tp=1.

One calibration, then an export per layout of the same in-memory model (tp=2, tp=2/ep=2, pp=2,
tp=2/pp=2; and tp=2 of a dense Llama of the same size, for the dense-MLP rows); the shards are joined
by verify's `recombine` and compared bit for bit with the tp=1 export. The expert-parallel
layout is also checked directly against tp=1 (rank r holds experts [2r, 2r+2), TRT-LLM's
Mapping.ep_experts), so a join and a cut that were wrong the same way could not pass.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.tiny_mixtral import build_tiny_mixtral, tiny_recipe, write_corpus

pytestmark = pytest.mark.integration

pytest.importorskip("modelopt.torch.quantization")

EXPORTS = {"tp1": (1, 1, 1), "tp2": (2, 1, 1), "tp2-ep2": (2, 1, 2), "pp2": (1, 2, 1), "tp2-pp2": (2, 2, 1)}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Quantize once, then convert with each (tp, ep): {key: checkpoint dir}, plus the workspace."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.convert import convert
    from orchestrator.stages.quantize import quantize

    root = tmp_path_factory.mktemp("parallel")
    model_dir, corpus = build_tiny_mixtral(root / "model"), write_corpus(root / "calibration.txt")
    data = tiny_recipe(model_dir, corpus, root / "work")
    model = quantize(validate_recipe(data)).model
    dirs = {}
    for key, (tp, pp, ep) in EXPORTS.items():
        variant = {**data, "workdir": str(root / f"work-{key}"), "checkpoint": {"tp": tp, "pp": pp, "ep": ep}}
        result = convert(validate_recipe(variant), model=model)
        assert result.rank_files == [f"rank{r}.safetensors" for r in range(tp * pp)] and result.ep == ep
        dirs[key] = result.checkpoint_dir
    return {"root": root, **dirs}


@pytest.fixture(scope="module")
def dense_exports(tmp_path_factory):
    """A dense Llama (no experts) quantized once, exported at tp=1 and tp=2."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.convert import convert
    from orchestrator.stages.quantize import quantize

    root = tmp_path_factory.mktemp("dense")
    model_dir, corpus = build_tiny_mixtral(root / "model", dense=True), write_corpus(root / "calibration.txt")
    data = tiny_recipe(model_dir, corpus, root / "work")
    data["quantize"]["exclude"] = ["lm_head"]
    model = quantize(validate_recipe(data)).model
    return {tp: convert(validate_recipe({**data, "workdir": str(root / f"work-tp{tp}"),
                                         "checkpoint": {"tp": tp, "pp": 1, "ep": 1}}), model=model).checkpoint_dir
            for tp in (1, 2)}


def _raw(path):
    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    file = SafetensorsFile(path)
    return {name: file.read(name) for name in file.tensors}


@pytest.mark.parametrize("key", ["tp2", "tp2-ep2", "pp2", "tp2-pp2"])
def test_parallel_export_verifies_and_recombines_to_tp1_bit_for_bit(exports, key):
    import numpy as np

    from orchestrator.stages.verify import verify_checkpoint
    from orchestrator.stages.verify.shards import recombine

    tp, pp, ep = EXPORTS[key]
    report = verify_checkpoint(exports[key])
    assert report.shards == "ok"
    mapping = report.mapping
    assert (mapping["tp_size"], mapping["pp_size"], mapping["moe_tp_size"], mapping["moe_ep_size"]) == (tp, pp, tp // ep, ep)
    whole, joined = recombine(exports["tp1"]), recombine(exports[key])
    assert joined.keys() == whole.keys() and len(whole) == 47
    for name, value in whole.items():
        assert joined[name].shape == value.shape and np.array_equal(joined[name], value), name


def test_expert_parallel_ranks_hold_trtllm_expert_blocks(exports):
    """moe_tp 1 x moe_ep 2: rank r holds whole experts [2r, 2r+2); everything else is the tp=2 export's bytes."""
    import numpy as np

    whole = _raw(exports["tp1"] / "rank0.safetensors")
    for rank in (0, 1):
        ours, tp_only = _raw(exports["tp2-ep2"] / f"rank{rank}.safetensors"), _raw(exports["tp2"] / f"rank{rank}.safetensors")
        assert ours.keys() == tp_only.keys()
        for name, value in ours.items():
            if ".mlp.fc." in name or ".mlp.proj." in name:
                want = whole[name] if name.endswith("activation_scaling_factor") else whole[name][2 * rank:2 * rank + 2]
            else:
                want = tp_only[name]
            assert value.shape == want.shape and np.array_equal(value, want), f"rank{rank} {name}"
    config = json.loads((exports["tp2-ep2"] / "config.json").read_text())
    assert config["mapping"] == {"world_size": 2, "tp_size": 2, "pp_size": 1, "moe_tp_size": 1, "moe_ep_size": 2}
    assert not (exports["tp2-ep2"] / "tp-export").exists()


def test_verify_command_reports_shards(exports):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["verify", str(exports["tp2-ep2"])], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "shards recombine" in result.output and "moe_ep 2" in result.output and "contract OK" in result.output


def test_expert_shard_disagreeing_with_its_peers_exits_2(exports, tmp_path):
    """A router (the same on every rank) that differs on rank 1: verify names it and the rule, exit 2."""
    import torch
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from orchestrator.cli import app

    ckpt = tmp_path / "checkpoint-trtllm"
    shutil.copytree(exports["tp2"], ckpt)
    path, name = ckpt / "rank1.safetensors", "transformer.layers.0.mlp.router.weight"
    tensors = load_file(str(path))
    tensors[name] = tensors[name] + torch.ones_like(tensors[name])
    save_file(tensors, str(path))
    result = CliRunner().invoke(app, ["verify", str(ckpt)])
    assert result.exit_code == 2, result.output
    assert "trtllm.shards" in result.output and name in result.output


def test_dense_mlp_tp2_export_verifies_and_recombines_to_tp1_bit_for_bit(dense_exports):
    """The dense-MLP rows (mlp.fc / mlp.gate out-dim, mlp.proj in-dim) on a real dense export."""
    import numpy as np

    from orchestrator.stages.verify import verify_checkpoint
    from orchestrator.stages.verify.shards import recombine

    assert verify_checkpoint(dense_exports[2]).shards == "ok"
    whole, joined = recombine(dense_exports[1]), recombine(dense_exports[2])
    assert any(".mlp.gate." in name for name in whole) and not any(".mlp.router." in name for name in whole)
    assert joined.keys() == whole.keys()
    for name, value in whole.items():
        assert joined[name].shape == value.shape and np.array_equal(joined[name], value), name
