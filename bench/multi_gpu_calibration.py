"""Calibration through the quantize stage on 1 GPU and on N GPUs of one host, both ways (issue 10).

    python bench/multi_gpu_calibration.py --gpus 2 --out results.json
    python bench/multi_gpu_calibration.py --gpus 2 --synthetic-layers 8 --out results.json

Runs the quantize stage (NVFP4, FP8 KV) with
- `one`: quantize.gpus=1, memory=gpu (skipped with --skip-single, for a model one GPU cannot hold);
- `layers`: quantize.gpus=N, parallel=layers (one process; accelerate places whole decoder layers);
- `fsdp2`: quantize.gpus=N, parallel=fsdp2 (torchrun, N FSDP2 ranks; modelopt's distributed path),
and prints per run load/calibration/export seconds, peak GPU memory per GPU, and whether its
checkpoint's tensors equal the first run's. The model is the embedded tiny Mixtral, or with
--synthetic-layers K a seeded random Mixtral-8x7B-geometry model of K decoder layers (2.8 GB
of BF16 weights each), saved to --scratch first (with the tiny model's tokenizer).
Needs N CUDA GPUs.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TINY = REPO / "orchestrator" / "assets" / "tiny_mixtral"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def compare(reference: Path, checkpoint: Path) -> dict:
    """Tensors of `checkpoint` against `reference`: how many differ, and for each how much."""
    import torch

    from tests.integration.tiny_mixtral import checkpoint_tensors, same_bits

    a, b = checkpoint_tensors(reference), checkpoint_tensors(checkpoint)
    differing = {}
    for name, expected in a.items():
        got = b.get(name)
        if got is None or not same_bits(expected, got):
            if got is None or got.shape != expected.shape:
                differing[name] = "missing or reshaped"
                continue
            unequal = (expected.reshape(-1).view(torch.uint8) != got.reshape(-1).view(torch.uint8)).float().mean()
            entry = {"dtype": str(expected.dtype), "bytes_differing": round(float(unequal), 6)}
            if expected.dtype != torch.uint8:
                x, y = expected.float(), got.float()
                entry["max_rel_diff"] = float((x - y).abs().max() / x.abs().max().clamp_min(1e-30))
            differing[name] = entry
    return {"tensors": len(a), "tensors_differing": len(differing), "differing": dict(list(differing.items())[:8])}


def synthetic_model(layers: int, directory: Path) -> tuple[Path, float]:
    """A seeded Mixtral-8x7B-geometry model of `layers` layers (bench/quantize.py's generator), saved as BF16."""
    import torch

    from bench.quantize import build_model

    start = time.perf_counter()
    args = argparse.Namespace(tiny=False, device="cuda:0", seed=0)
    model, _, _ = build_model(args, layers, host=True)
    model.save_pretrained(directory, max_shard_size="5GB")
    for name in TOKENIZER_FILES:
        shutil.copy(TINY / name, directory / name)
    del model
    torch.cuda.empty_cache()
    return directory, round(time.perf_counter() - start, 1)


def run(name: str, overrides: list[str], source: str | None, workdir: Path, reference: Path | None) -> dict:
    import torch

    from orchestrator.recipe.loader import apply_overrides, validate_recipe
    from orchestrator.stages.quantize import quantize

    data = copy.deepcopy(yaml.safe_load((REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml").read_text()))
    base = ["platform=h100", "run.until=convert", "quantize.device=cuda", f"workdir={workdir}"]
    if source is not None:
        base += [f"model.source={source}", f"quantize.calibration.dataset={TINY / 'corpus' / 'calibration.txt'}",
                 f"eval.perplexity.dataset={TINY / 'corpus' / 'heldout.txt'}"]
    apply_overrides(data, base + overrides)
    recipe = validate_recipe(data)
    for i in range(torch.cuda.device_count()):
        torch.zeros(1, device=f"cuda:{i}")  # a context on every GPU, so its peak can be reset and read
        torch.cuda.reset_peak_memory_stats(i)
    start = time.perf_counter()
    result = quantize(recipe)
    wall = round(time.perf_counter() - start, 2)
    if result.sharded:
        peaks = [rank["gpu_gib"] for rank in result.sharded["peak_per_rank"]]
    else:
        peaks = [round(torch.cuda.max_memory_allocated(i) / 2**30, 3) for i in range(torch.cuda.device_count())]
    placement = getattr(result.model, "hf_device_map", None) or {}
    devices: dict[str, int] = {}
    for device in placement.values():
        devices[str(device)] = devices.get(str(device), 0) + 1
    report = {
        "run": name, "overrides": overrides, "wall_s": wall, "load_s": result.load_s,
        "calibration_s": result.calibration_s, "export_s": result.export_s, "peak_gib_per_gpu": peaks,
        "checkpoint_gib": round(result.checkpoint_bytes / 2**30, 3), "memory": result.calibration["memory"],
        "batch_size": result.calibration["batch_size"], "forward_passes": result.calibration["forward_passes"],
        "modules_per_device": devices or None,
        "ranks": result.sharded["peak_per_rank"] if result.sharded else None,
        "against_first": compare(reference, result.checkpoint_dir) if reference else None,
    }
    del result
    torch.cuda.empty_cache()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--synthetic-layers", type=int, default=0, help="0: the embedded tiny Mixtral")
    parser.add_argument("--skip-single", action="store_true", help="no 1-GPU run (a model one GPU cannot hold)")
    parser.add_argument("--runs", default="one,one,layers,fsdp2", help="a repeated run shows GPU run-to-run variation")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="per forward (per rank for fsdp2)")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()),
                        help="where a fresh folder for the model and workdirs is made (and removed)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    args.scratch.mkdir(parents=True, exist_ok=True)
    args.scratch = Path(tempfile.mkdtemp(prefix="multi-gpu-bench-", dir=args.scratch))  # only ours is removed
    report: dict = {"torch": torch.__version__, "gpus": [torch.cuda.get_device_name(i)
                                                         for i in range(torch.cuda.device_count())]}
    source = None
    if args.synthetic_layers:
        path, seconds = synthetic_model(args.synthetic_layers, args.scratch / "model")
        source = str(path)
        report["model"] = {"synthetic_layers": args.synthetic_layers, "build_s": seconds,
                           "bf16_gib": round(sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**30, 2)}
    else:
        report["model"] = "builtin:tiny-mixtral"
    data = [f"quantize.calibration.samples={args.samples}", f"quantize.calibration.batch_size={args.batch_size}"]
    plans = {"one": ["quantize.gpus=1", "quantize.memory=gpu"],
             "layers": [f"quantize.gpus={args.gpus}", "quantize.parallel=layers", "quantize.memory=gpu"],
             "fsdp2": [f"quantize.gpus={args.gpus}", "quantize.parallel=fsdp2"]}
    wanted = [r for r in args.runs.split(",") if not (r == "one" and args.skip_single)]
    results: list[dict] = []
    reference = None  # the first run's checkpoint: the others are compared with it
    for index, name in enumerate(wanted):
        workdir = args.scratch / f"work-{index}-{name}"
        try:
            results.append(run(name, plans[name] + data, source, workdir, reference))
            if reference is None:
                reference = workdir / "checkpoint-hf"
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - a bench reports a failed run and goes on with the others
            details = getattr(exc, "details", None) or []
            results.append({"run": name, "error": f"{type(exc).__name__}: {exc} {details}"[:2000]})
        print(json.dumps(results[-1]), flush=True)
    report["runs"] = results
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
