"""How FSDP2 ranks share the calibration batches (quantize_fsdp.rank_batches)."""

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
