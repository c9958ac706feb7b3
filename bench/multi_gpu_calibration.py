"""Calibrate the embedded tiny Mixtral through the quantize stage on 1 and on N GPUs of one host.

    python bench/multi_gpu_calibration.py --gpus 2 --out results.json

Prints where the layers went, calibration/export time and peak memory per GPU, and whether the
N-GPU checkpoint's tensors equal the 1-GPU checkpoint's. Needs N CUDA GPUs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tensor_digests(checkpoint: Path) -> dict[str, str]:
    import torch
    from safetensors import safe_open

    out = {}
    for path in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(path), "pt") as fh:
            for name in fh.keys():
                raw = fh.get_tensor(name).contiguous().reshape(-1).view(torch.uint8)
                out[name] = hashlib.sha256(raw.numpy().tobytes()).hexdigest()
    return out


def run(gpus: int, workdir: Path) -> dict:
    import torch

    from orchestrator.recipe.loader import apply_overrides, validate_recipe
    from orchestrator.stages.quantize import quantize

    data = yaml.safe_load((REPO / "recipes" / "tiny-mixtral-nvfp4-cpu.yaml").read_text())
    data = copy.deepcopy(data)
    apply_overrides(data, ["platform=h100", "run.until=convert", "quantize.device=cuda", f"quantize.gpus={gpus}",
                           "quantize.memory=gpu", f"workdir={workdir}"])
    recipe = validate_recipe(data)
    for i in range(torch.cuda.device_count()):
        torch.zeros(1, device=f"cuda:{i}")  # a context on every GPU, so its peak can be reset and read
        torch.cuda.reset_peak_memory_stats(i)
    result = quantize(recipe)
    placement = getattr(result.model, "hf_device_map", None) or {"": "cuda:0"}
    devices: dict[str, int] = {}
    for device in placement.values():
        devices[str(device)] = devices.get(str(device), 0) + 1
    return {
        "gpus": gpus, "calibration_s": result.calibration_s, "export_s": result.export_s, "load_s": result.load_s,
        "modules_per_device": devices,
        "peak_gib_per_gpu": [round(torch.cuda.max_memory_allocated(i) / 2**30, 4)
                             for i in range(torch.cuda.device_count())],
        "digests": tensor_digests(result.checkpoint_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, Path(tmp) / "one")
        many = run(args.gpus, Path(tmp) / "many")
    same = one.pop("digests") == many.pop("digests")
    report = {"one_gpu": one, "n_gpus": many, "tensors_identical": same}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
