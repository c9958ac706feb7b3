"""quantize.parallel=fsdp2 on two GPUs: NCCL ranks under torchrun write the 1-GPU checkpoint.

The CPU twin (tests/integration/test_quantize_fsdp_cpu.py) runs the same ranks on gloo with
the GPU count patched; here nothing is patched. Each batch is the same batch as on one GPU and
the amax values are reduced with a max over the ranks, so the tensors must match bit for bit
(the FP8 KV scales up to their last bit, see `_check_same`). Then convert, in one process,
restores the ranks' saved state: on GPU 0, and spread over both GPUs the way a model larger
than one GPU would be.
Run: python -m pytest -q -s -m gpu tests/gpu/test_quantize_fsdp_cuda.py  (prints the numbers)
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if torch.cuda.device_count() < 2:
    pytest.skip("needs 2 CUDA GPUs", allow_module_level=True)
pytest.importorskip("modelopt.torch.quantization")

from tests.integration.tiny_mixtral import (  # noqa: E402
    build_tiny_mixtral,
    checkpoint_tensors,
    same_bits,
    tiny_recipe,
    write_corpus,
)

SECTIONS = {"one": {"gpus": 1, "memory": "gpu"}, "two": {"gpus": 2, "parallel": "fsdp2"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quantize import quantize

    root = tmp_path_factory.mktemp("fsdp-cuda")
    model_dir, corpus = build_tiny_mixtral(root / "model"), write_corpus(root / "calibration.txt")

    def recipe(name):
        data = tiny_recipe(model_dir, corpus, root / name)
        data["platform"] = "h100"
        data["run"] = {"until": "convert"}
        data["quantize"].update(device="cuda", **SECTIONS[name])
        data["quantize"]["calibration"].update(samples=24, batch_size=8)
        return validate_recipe(data)

    return {"recipe": recipe, "one": quantize(recipe("one")), "two": quantize(recipe("two"))}


def test_two_fsdp2_ranks_write_the_one_gpu_checkpoint(runs):
    one, two = runs["one"], runs["two"]
    print(f"\n[fsdp2] 1 GPU: calibration {one.calibration_s:.2f} s export {one.export_s:.2f} s peak "
          f"{one.peak_gpu_mem_gb} GiB; 2 ranks: load {two.load_s:.2f} s calibration {two.calibration_s:.2f} s "
          f"export {two.export_s:.2f} s, per rank {two.sharded['peak_per_rank']}")
    assert two.calibration["memory"] == "fsdp2" and two.sharded["ranks"] == 2
    assert all(rank["gpu_gib"] > 0 for rank in two.sharded["peak_per_rank"])
    _check_same(one.checkpoint_dir, two.checkpoint_dir)


@pytest.mark.parametrize("placement", ["gpu", "layers"])
def test_convert_restores_the_ranks_state_in_one_process(runs, placement, monkeypatch):
    """gpu: the model fits GPU 0. layers: stand-in for a model larger than GPU 0 (the tiny one is not)."""
    from orchestrator.stages import quantize as stage
    from orchestrator.stages.convert import convert

    monkeypatch.setattr(stage, "placement_after_ranks", lambda *_args: placement)
    from_memory = convert(runs["recipe"]("one"), model=runs["one"].model)
    from_state = convert(runs["recipe"]("two"))
    devices = {str(d) for d in (getattr(from_state.model, "hf_device_map", None) or {"": 0}).values()}
    print(f"\n[fsdp2-convert] {placement}: devices {sorted(devices)}, {from_state.duration_s:.2f} s")
    assert not from_state.reused_model and from_state.peak_gpu_mem_gb > 0
    assert devices == ({"0", "1"} if placement == "layers" else {"0"})
    _check_same(from_memory.checkpoint_dir, from_state.checkpoint_dir)


def _check_same(expected_dir, got_dir):
    expected, got = checkpoint_tensors(expected_dir), checkpoint_tensors(got_dir)
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if not same_bits(got[name], expected[name])]
    # The FP8 KV-cache scales (amax / 448) may differ in the last bit: the FSDP2 export gathers the amax
    # to the CPU before dividing, one GPU divides on the GPU (by a reciprocal). Everything else: identical.
    assert all(name.endswith(("k_scale", "v_scale", "kv_cache_scaling_factor")) for name in differing), differing
    for name in differing:
        assert torch.allclose(got[name].float(), expected[name].float(), rtol=2.5e-7, atol=0), name
