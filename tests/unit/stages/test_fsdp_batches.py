"""FSDP2 ranks: how they share the calibration batches (rank_batches) and how torchrun starts them (argv, env)."""

from __future__ import annotations

import pytest

from orchestrator.stages.quantize_fsdp import rank_batches


@pytest.mark.parametrize(("samples", "batch", "world"), [(24, 8, 2), (16, 8, 2), (10, 4, 3), (5, 1, 4), (3, 8, 2)])
def test_every_batch_runs_and_every_rank_runs_the_same_number(samples, batch, world):
    shares = [rank_batches(samples, batch, rank, world) for rank in range(world)]
    assert len({len(share) for share in shares}) == 1  # equal forwards: each one is a collective
    covered = sorted({i for share in shares for start, end in share for i in range(start, end)})
    assert covered == list(range(samples))
    assert all(0 < end - start <= batch for share in shares for start, end in share)


def test_batch_i_goes_to_rank_i_mod_world_and_a_short_rank_repeats_an_early_batch():
    assert rank_batches(24, 8, 0, 2) == [(0, 8), (16, 24)]
    assert rank_batches(24, 8, 1, 2) == [(8, 16), (0, 8)]


def _job(device: str):
    from orchestrator.stages.quantize_fsdp import FsdpJob

    return FsdpJob(recipe={}, model_path="m", ranks=2, device=device, batch_size=8, export_dir="e", state_dir="s",
                   source={})


def test_the_ranks_meet_on_loopback_not_at_the_hostname(tmp_path):
    """torchrun's default meeting point is the FQDN; a CI sandbox whose hostname does not resolve, or resolves
    to an unreachable address, cannot start the ranks (CI failed so; reproduced here). All ranks are on this host."""
    from orchestrator.stages.quantize_fsdp import torchrun_argv

    argv = torchrun_argv(_job("cuda"), tmp_path)
    assert argv[1:3] == ["-m", "torch.distributed.run"] and "--rdzv-endpoint=127.0.0.1:0" in argv
    assert "--local-addr=127.0.0.1" in argv and not any("localhost" in arg or arg == "--standalone" for arg in argv)
    assert "--nproc-per-node=2" in argv and argv[-1] == str(tmp_path)


def test_cpu_ranks_use_loopback_for_gloo_unless_the_user_chose(monkeypatch):
    from orchestrator.stages.quantize_fsdp import rank_env

    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = rank_env(_job("cpu"))
    assert env["GLOO_SOCKET_IFNAME"] == "lo" and int(env["OMP_NUM_THREADS"]) >= 1
    assert "GLOO_SOCKET_IFNAME" not in rank_env(_job("cuda"))  # NCCL ranks: gloo is not used
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "eth7")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert rank_env(_job("cpu")) == {"GLOO_SOCKET_IFNAME": "eth7", "OMP_NUM_THREADS": "3"}
