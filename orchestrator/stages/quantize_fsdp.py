"""Calibration sharded over the GPUs of one host: FSDP2 processes under torchrun (modelopt's distributed PTQ).

`quantize.gpus: N` with `quantize.parallel: fsdp2`. The quantize stage (the parent) draws the
calibration samples as usual, writes a job directory (job.json + calibration.safetensors) and
runs, through the local runner,

    python -m torch.distributed.run --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0
        --local-addr 127.0.0.1 --nproc-per-node N -m orchestrator.stages.quantize_fsdp JOB_DIR

Each rank then
- builds the model on the meta device, applies `fully_shard` to every decoder layer and to the
  root, and receives its 1/N of every weight from rank 0, the only rank that reads the checkpoint
  (`set_model_state_dict(..., broadcast_from_rank0=True)`): one copy of the weights in CPU memory,
  1/N of them on each GPU, plus one gathered layer at a time while it runs;
- runs its share of the calibration batches through `mtq.quantize` (batch i goes to rank i mod N;
  a rank short of a batch in the last round runs an earlier one again, which a max does not see).
  At the end of max calibration modelopt reduces every amax with a max over the ranks (its
  quantizers' default data-parallel group is the whole world), so the amax values equal those of
  one process seeing every batch;
- exports through the stage's own core (`quantize_and_export`): modelopt's FSDP2-aware
  `export_hf_checkpoint` gathers the full state on rank 0, which alone writes the checkpoint and
  the quantizer state.
Rank 0 writes result.json (timings, peak memory of every rank). Only max calibration: recipe
checks refuse fsdp2 for AWQ and SmoothQuant, whose statistics would need the same exchange.

Same job, N=1..k ranks, on CPU with gloo: what the CPU tests run; NCCL on GPUs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.atomic import atomic_write_json
from orchestrator.errors import StageFailed, UserError
from orchestrator.stages.progress import ProgressFn

JOB_FILE = "job.json"
DATA_FILE = "calibration.safetensors"
RESULT_FILE = "result.json"
LOG_TAIL_LINES = 30
# Rank 0 reads the whole checkpoint while the others wait in the first collective: NCCL's default
# 10 minutes is too short for a few hundred GB from a slow disk.
COLLECTIVE_TIMEOUT = timedelta(hours=2)
LOOPBACK = "127.0.0.1"
BATCH_LINE = re.compile(r"^calibration batch (\d+)/(\d+)$")  # what rank 0 prints after each forward
PROGRESS_TASK = "calibration batches (each rank)"


@dataclass(frozen=True)
class FsdpJob:
    """What every rank needs; written as job.json by the parent."""

    recipe: dict[str, Any]  # recipe_dict: ranks rebuild the modelopt config from it
    model_path: str
    ranks: int
    device: str  # cuda (NCCL) or cpu (gloo)
    batch_size: int
    export_dir: str
    state_dir: str
    source: dict[str, Any]


def run(job: FsdpJob, input_ids, job_dir: Path, log_path: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Write the job, run the ranks under torchrun, return rank 0's result.json. StageFailed with the log tail.

    `progress` hears rank 0's batches, read from the log while the ranks run.
    """
    from safetensors.torch import save_file

    from orchestrator.runtime.base import Job
    from orchestrator.runtime.local import LocalRunner, log_tail

    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / RESULT_FILE).unlink(missing_ok=True)
    atomic_write_json(job_dir / JOB_FILE, asdict(job))
    save_file({"input_ids": input_ids.contiguous()}, str(job_dir / DATA_FILE))
    handle = LocalRunner(echo=False).start(Job("quantize", torchrun_argv(job, job_dir), log_path, env=rank_env(job)))
    done = threading.Event()
    watcher = threading.Thread(target=_report_batches, args=(log_path, progress, done), daemon=True)
    if progress:
        watcher.start()
    try:
        code = handle.wait()  # Ctrl-C reaches the ranks, as LocalRunner.run does
    finally:
        done.set()
        if progress:
            watcher.join(timeout=5)
    result = job_dir / RESULT_FILE
    if code != 0 or not result.is_file():
        raise StageFailed(f"distributed calibration on {job.ranks} ranks failed (torchrun exit {code}); "
                          f"log: {log_path}", log_tail=log_tail(log_path, LOG_TAIL_LINES))
    report = json.loads(result.read_text())
    shutil.rmtree(job_dir, ignore_errors=True)  # kept after a failure, for a look at what the ranks were given
    return report


def torchrun_argv(job: FsdpJob, job_dir: Path) -> list[str]:
    """The ranks all run on this host, so every address is loopback.

    Left to itself torchrun tells the ranks to meet at this machine's FQDN, which a container or CI sandbox
    often cannot resolve (the ranks then retry for 5 minutes) or resolves to an address they cannot reach.
    """
    # What --standalone sets (a c10d store on a free port, a fresh run id), with the address spelt as loopback:
    # --standalone says "localhost", a name too.
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={LOOPBACK}:0", f"--rdzv-id={uuid.uuid4()}", f"--local-addr={LOOPBACK}",
            f"--nproc-per-node={job.ranks}", "-m", "orchestrator.stages.quantize_fsdp", str(job_dir)]


def rank_env(job: FsdpJob) -> dict[str, str]:
    """What the ranks need beyond our environment; a value the user set wins."""
    # torchrun sets OMP_NUM_THREADS=1 unless told; CPU ranks would then calibrate on one core each.
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // job.ranks))}
    if job.device != "cuda":  # gloo picks its interface from the hostname too; loopback reaches every rank here
        env["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME") or "lo"
    return env


def _report_batches(log_path: Path, progress: ProgressFn | None, done: threading.Event) -> None:
    from orchestrator.runtime.local import log_tail

    last = None
    while progress is not None:
        finished = done.wait(0.5)
        for line in reversed(log_tail(log_path, 20)):
            match = BATCH_LINE.match(line)
            if match:
                if match.groups() != last:
                    last = match.groups()
                    progress(PROGRESS_TASK, int(last[0]), int(last[1]))
                break
        if finished:
            return


def rank_batches(samples: int, batch_size: int, rank: int, world: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges of this rank's batches: batch i to rank i mod world, equal counts per rank.

    Every rank must run the same number of forwards (each one gathers every layer's weights
    from all ranks), so a rank short of a batch in the last round repeats an earlier one.
    """
    batches = [(start, min(start + batch_size, samples)) for start in range(0, samples, batch_size)]
    rounds = math.ceil(len(batches) / world)
    return [batches[(rank + k * world) % len(batches)] for k in range(rounds)]


def empty_model(path: str, dtype, trust_remote_code: bool):
    """The model on the meta device (constructor-made buffers real) and its decoder layers, the units FSDP2 shards.

    The parent calls it before starting the ranks, so a model they could not load or shard is
    a one-line UserError rather than a failed rank.
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from orchestrator.stages.layer_stream import decoder_layers

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        with init_empty_weights(include_buffers=False):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the model from {path}: {exc}".splitlines()[0]) from None
    return model, decoder_layers(model, purpose="quantize.parallel=fsdp2", instead="quantize.parallel=layers")


def _sharded_model(path: str, dtype, trust_remote_code: bool, device: str, rank: int):
    """The model with every decoder layer (and the root) under FSDP2, weights broadcast from rank 0."""
    import torch
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    model, layers = empty_model(path, dtype, trust_remote_code)
    # Buffers the model computes at construction (rotary inv_freq) are in no checkpoint: keep them.
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    full = (AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code).state_dict()
            if rank == 0 else {})
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    return model.eval()


class _RankLoop:
    """modelopt's forward_loop on this rank's batches."""

    def __init__(self, model, input_ids, ranges: list[tuple[int, int]], device: str, rank: int):
        from orchestrator.stages.calibration import forward_kwargs

        self.model, self.input_ids, self.ranges, self.device, self.rank = model, input_ids, ranges, device, rank
        self.kwargs = forward_kwargs(model)

        self.peak_gib: float | None = None  # peak GPU memory of the forwards

    def __call__(self, _unwrapped) -> None:
        import torch

        # The FSDP2 root, not what mtq.quantize passes: its forward gathers and frees each layer's shards.
        with torch.no_grad():
            for i, (start, end) in enumerate(self.ranges, 1):
                self.model(input_ids=self.input_ids[start:end].to(self.device), use_cache=False, **self.kwargs)
                if self.rank == 0:  # the others run in step (every forward is a collective)
                    print(f"calibration batch {i}/{len(self.ranges)}", flush=True)
        self.peak_gib = _gpu_peak_gib(self.device, reset=True)


def _gpu_peak_gib(device: str, reset: bool = False) -> float | None:
    """This rank's peak GPU memory since the last reset (None on CPU)."""
    import torch

    if not device.startswith("cuda"):
        return None
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


def main(job_dir: Path) -> None:
    """One rank (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)."""
    import torch
    import torch.distributed as dist
    from modelopt.torch.quantization.utils import patch_fsdp_mp_dtypes
    from safetensors.torch import load_file

    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages import instrument
    from orchestrator.stages.quant_config import build_quant_config
    from orchestrator.stages.quantize import quantize_and_export, torch_dtype

    job = FsdpJob(**json.loads((job_dir / JOB_FILE).read_text()))
    device = job.device
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        device = f"cuda:{torch.cuda.current_device()}"
    dist.init_process_group("nccl" if job.device == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        recipe = validate_recipe(job.recipe)
        dtype = torch_dtype(recipe)
        clock = instrument.Stopwatch()
        model = _sharded_model(job.model_path, dtype, recipe.model.trust_remote_code, device, rank)
        dist.barrier()
        load_s = clock.elapsed
        resident = round(torch.cuda.memory_allocated() / 2**30, 3) if job.device == "cuda" else None
        load_peak = _gpu_peak_gib(device, reset=True)
        input_ids = load_file(str(job_dir / DATA_FILE))["input_ids"]
        ranges = rank_batches(len(input_ids), job.batch_size, rank, world)
        loop = _RankLoop(model, input_ids, ranges, device, rank)
        with patch_fsdp_mp_dtypes():
            core = quantize_and_export(
                model, build_quant_config(recipe), loop, memory="fsdp2",
                device=device, dtype=dtype, export_dir=Path(job.export_dir),
                state_dir=Path(job.state_dir) if rank == 0 else None, source=job.source, fsdp_rank=rank)
        phases = {"load": load_peak, "forwards": loop.peak_gib, "weights_and_export": _gpu_peak_gib(device)}
        mine = {"gpu_gib": max((p for p in phases.values() if p is not None), default=None),
                "gpu_resident_after_load_gib": resident, "gpu_peak_gib_by_phase": phases,
                "cpu_rss_gib": instrument.peak_cpu_rss_gb()}
        peaks = [None] * world
        dist.all_gather_object(peaks, mine)
        if rank == 0:
            atomic_write_json(job_dir / RESULT_FILE, {
                "ranks": world, "load_s": load_s, "calibration_s": core.calibration_s, "export_s": core.export_s,
                "batches_per_rank": len(ranges), "batch_size": job.batch_size, "peak_per_rank": peaks})
        dist.barrier()  # every rank done with its collectives before the group goes away
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
