"""Quantize benchmark (issue 9): modelopt's plain flow vs the orchestrator's quantize core, Mixtral-8x7B geometry.

A MixtralForCausalLM with the Mixtral-8x7B geometry (hidden 4096, ffn 14336, 8 experts
top-2, 32/8 heads, vocab 32000, rope theta 1e6) and N decoder layers of seeded synthetic
weights (normal, std 0.02; norms 1) is built layer by layer on the GPU, the same weights
for every flow. Calibration tokens are seeded random ids. Flows (--flows):

  modelopt        (a) `mtq.quantize` + `export_hf_checkpoint`, model wholly on the GPU, plain forward loop
  modelopt-nocache  (a) with `use_cache=False` in the forward loop, as the orchestrator's loop calls it
  orchestrator    (b) `orchestrator.stages.quantize.quantize_and_export`, memory=gpu: the stage's own core
  stream          (c) the same core, memory=stream: weights in CPU memory (--pin: page-locked),
                      each decoder layer on the GPU once for calibration and once for export
  stream-pageable (c') stream with ordinary (pageable) CPU memory, as the stage gets it from from_pretrained
  offload         (d) modelopt on an accelerate-offloaded model (dispatch_model): embeddings, norm and lm_head
                      on the GPU, every decoder layer offloaded to CPU memory, so each batch re-sends every
                      layer (--offload-samples samples)

Weight generation is not timed. Every flow prints calibration s, export s (per layer too),
peak GPU GiB, and its ratio to (a). Checkpoints go to --export-dir (local disk) and are
deleted after their size is taken unless --keep.

  python bench/quantize.py --layers 4 --flows modelopt,orchestrator,stream           # H100, the ratio table
  python bench/quantize.py --layers 32 --flows stream --export-dir /tmp/qbench       # the model larger than the GPU
  python bench/quantize.py --tiny --device cpu --layers 2 --samples 16 --seq-len 64  # smoke test without a GPU
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIXTRAL_8X7B = {"hidden_size": 4096, "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2,
                "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "rope_theta": 1e6,
                "max_position_embeddings": 32768}
TINY = {**MIXTRAL_8X7B, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512}
WEIGHT_STD = 0.02
FLOWS = ("modelopt", "modelopt-nocache", "orchestrator", "stream", "stream-pageable", "offload")
ALIGN = 256  # bytes between tensors carved out of one host buffer
# Host buffers page-locked with cudaHostRegister, kept alive until unregistered after their flow:
# a freed-but-registered range makes the next registration at that address fail.
REGISTERED: list = []


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--flows", default="modelopt,orchestrator",
                        help=f"comma-separated, in run order, repeats allowed: {', '.join(FLOWS)}")
    parser.add_argument("--format", default="nvfp4")
    parser.add_argument("--kv-cache", default="none", help="none (modelopt's NVFP4_DEFAULT_CFG as is) or fp8")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="hidden 128, for a smoke test")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="stream: pageable host memory")
    parser.add_argument("--offload-samples", type=int, default=128)
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-dir", type=Path, default=Path("/tmp/quantize-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the exported checkpoints")
    parser.add_argument("--repeat", type=int, default=1, help="run the flows this many times, interleaved; "
                        "the table shows each flow's fastest run")
    parser.add_argument("--digest", action="store_true",
                        help="sha256 over the exported tensors (name, dtype, shape, bytes): equal checkpoints match")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    unknown = set(args.flows.split(",")) - set(FLOWS)
    if unknown:
        parser.error(f"unknown flows {sorted(unknown)}; choose from {', '.join(FLOWS)}")
    return args


# -- the synthetic model -----------------------------------------------------------------------------------

def mixtral_config(args, layers: int):
    from transformers import MixtralConfig

    return MixtralConfig(**(TINY if args.tiny else MIXTRAL_8X7B), num_hidden_layers=layers, tie_word_embeddings=False,
                         architectures=["MixtralForCausalLM"],
                         bos_token_id=1, eos_token_id=2)


def _fill(module, generator) -> None:
    """Seeded values in place: 1-D parameters (the RMSNorm weights) are 1, matrices normal(0, WEIGHT_STD)."""
    import torch

    with torch.no_grad():
        for parameter in module.parameters(recurse=False):
            if parameter.dim() == 1:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, WEIGHT_STD, generator=generator)


def _to_host(module, pin: bool) -> bool:
    """Move `module`'s parameters into one host buffer (page-locked with cudaHostRegister when `pin`)."""
    import torch

    parameters = list(module.parameters())
    sizes = [-(-p.nbytes // ALIGN) * ALIGN for p in parameters]
    buffer = torch.empty(sum(sizes), dtype=torch.uint8)
    pinned = False
    if pin:
        # cudaHostRegister on one plain allocation: torch's pinned allocator rounds each tensor up to a
        # power of two (117 MB expert matrices would take 128 MiB), which 93 GB of weights cannot afford.
        try:
            torch.cuda.check_error(torch.cuda.cudart().cudaHostRegister(buffer.data_ptr(), buffer.numel(), 0))
            REGISTERED.append(buffer)
            pinned = True
        except Exception:  # noqa: BLE001 - stay pageable; the result records it
            pinned = False
    offset = 0
    for parameter, size in zip(parameters, sizes, strict=True):
        view = buffer[offset:offset + parameter.nbytes].view(parameter.dtype).view(parameter.shape)
        view.copy_(parameter.data, non_blocking=pinned)
        parameter.data = view
        offset += size
    if pinned:
        torch.cuda.synchronize()
    for sub in module.modules():
        for name, value in sub._buffers.items():
            if value is not None:
                sub._buffers[name] = value.to("cpu")
    return pinned


def unregister_host_buffers() -> None:
    import torch

    while REGISTERED:
        buffer = REGISTERED.pop()
        torch.cuda.cudart().cudaHostUnregister(buffer.data_ptr())


def build_model(args, layers: int, *, host: bool, pin: bool = False):
    """The synthetic model, generated on args.device (same values whatever the placement); host: layers in CPU memory.

    Returns (model, seconds, pinned).
    """
    import torch
    from transformers import MixtralForCausalLM

    start = time.perf_counter()
    config = mixtral_config(args, layers)
    with torch.device("meta"):
        model = MixtralForCausalLM(config)
    model = model.to(torch.bfloat16).eval()
    device = torch.device(args.device)
    decoder = model.model.layers
    inside = {id(m) for layer in decoder for m in layer.modules()}
    generator = torch.Generator(device=device)
    generator.manual_seed(args.seed * 100_003)
    for module in model.modules():
        if id(module) not in inside:
            module.to_empty(device=device, recurse=False)
            _fill(module, generator)
    # The rotary table is computed at construction; on the meta device it holds nothing.
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config, device=device)
    pinned = False
    for index, layer in enumerate(decoder):
        layer.to_empty(device=device)
        generator.manual_seed(args.seed * 100_003 + index + 1)
        for module in layer.modules():
            _fill(module, generator)
        if host:
            pinned = _to_host(layer, pin)
    if host:
        # The non-layer modules go home too: the streamer (or accelerate) decides what visits the GPU.
        for module in model.modules():
            if id(module) not in inside:
                for value in module._parameters.values():
                    if value is not None:
                        value.data = value.data.to("cpu")
                for name, value in module._buffers.items():
                    if value is not None:
                        module._buffers[name] = value.to("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model, round(time.perf_counter() - start, 2), pinned


def calibration_data(args, samples: int):
    import hashlib

    import torch

    from orchestrator.stages.calibration import CalibrationData

    generator = torch.Generator().manual_seed(args.seed)
    vocab = (TINY if args.tiny else MIXTRAL_8X7B)["vocab_size"]
    ids = torch.randint(3, vocab, (samples, args.seq_len), generator=generator)
    digest = hashlib.sha256(ids.to(torch.int32).numpy().tobytes()).hexdigest()
    return CalibrationData(ids, "synthetic", digest, samples)


def quant_config(args):
    """The config the orchestrator builds for this format (same for every flow)."""
    from orchestrator.recipe.loader import validate_recipe
    from orchestrator.stages.quant_config import build_quant_config

    recipe = validate_recipe({"name": "bench", "model": {"source": "bench/synthetic"}, "platform": "cpu",
                              "quantize": {"format": args.format, "kv_cache": args.kv_cache},
                              "run": {"until": "convert"}})
    return build_quant_config(recipe)


# -- the flows ---------------------------------------------------------------------------------------------

def _sync(args) -> None:
    import torch

    if args.device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(args) -> None:
    import torch

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(args) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None


def plain_modelopt(args, model, config, data, export_dir: Path, **forward_kwargs) -> tuple[float, float]:
    """(a), and (d) on an offloaded model: modelopt as its examples use it. Returns (calibration s, export s)."""
    import modelopt.torch.quantization as mtq
    import torch
    from modelopt.torch.export import export_hf_checkpoint

    def forward_loop(m):
        with torch.no_grad():
            for batch in data.input_ids.split(args.batch_size):
                m(batch.to(args.device), **forward_kwargs)

    start = time.perf_counter()
    model = mtq.quantize(model, config, forward_loop)
    _sync(args)
    calibrated = time.perf_counter()
    export_hf_checkpoint(model, dtype=torch.bfloat16, export_dir=export_dir)
    _sync(args)
    return calibrated - start, time.perf_counter() - calibrated


def orchestrator_core(args, model, config, data, export_dir: Path, memory: str) -> tuple[float, float, dict | None]:
    """(b)/(c): the stage's `quantize_and_export`, with the stage's own ForwardLoop."""
    import torch

    from orchestrator.stages.calibration import ForwardLoop, forward_kwargs
    from orchestrator.stages.quantize import quantize_and_export

    loop = ForwardLoop(data, args.device, args.batch_size, None, forward_kwargs(model))
    state_dir = export_dir.with_name(export_dir.name + "-state")
    state_dir.mkdir(parents=True, exist_ok=True)
    core = quantize_and_export(model, config, loop, memory=memory, device=args.device, dtype=torch.bfloat16,
                               export_dir=export_dir, state_dir=state_dir, source={"source": "bench/synthetic"})
    shutil.rmtree(state_dir, ignore_errors=True)
    return core.calibration_s, core.export_s, core.streamed


def run_flow(args, flow: str, config, data_full) -> dict:
    layers = args.layers
    host = flow in ("stream", "stream-pageable", "offload")
    pin = args.pin and flow != "stream-pageable" and args.device == "cuda"
    model, build_s, pinned = build_model(args, layers, host=host, pin=pin)
    data = data_full
    extra: dict = {}
    if flow == "offload":
        from accelerate import dispatch_model

        data = calibration_data(args, args.offload_samples)
        # Spelled out rather than infer_auto_device_map: with a small GPU budget that puts the embeddings on
        # the CPU too (it reserves room for the largest layer), and the forward fails on device mismatch.
        device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.norm": 0, "lm_head": 0,
                      **{f"model.layers.{index}": "cpu" for index in range(layers)}}
        model = dispatch_model(model, device_map=device_map)
        extra["offloaded_layers"] = layers
    export_dir = args.export_dir / flow
    shutil.rmtree(export_dir, ignore_errors=True)
    export_dir.mkdir(parents=True)
    gc.collect()
    _reset_peak(args)
    start = time.perf_counter()
    if flow in ("modelopt", "offload"):
        calibration_s, export_s = plain_modelopt(args, model, config, data, export_dir)
    elif flow == "modelopt-nocache":
        calibration_s, export_s = plain_modelopt(args, model, config, data, export_dir, use_cache=False)
    else:
        memory = "gpu" if flow == "orchestrator" else "stream"
        calibration_s, export_s, streamed = orchestrator_core(args, model, config, data, export_dir, memory)
        extra["streamed"] = streamed
    wall_s = time.perf_counter() - start
    checkpoint_gib = sum(p.stat().st_size for p in export_dir.rglob("*") if p.is_file()) / 2**30
    if args.digest:
        extra["tensor_digests"] = tensor_digests(export_dir)
        extra["tensors_sha256"] = combined(extra["tensor_digests"])
    result = {"flow": flow, "layers": layers, "samples": data.samples, "seq_len": data.seq_len,
              "batch_size": args.batch_size, "calibration_s": round(calibration_s, 2), "export_s": round(export_s, 2),
              "wall_s": round(wall_s, 2), "calibration_s_per_layer": round(calibration_s / layers, 3),
              "export_s_per_layer": round(export_s / layers, 3), "peak_gpu_gib": _peak_gib(args),
              "checkpoint_gib": round(checkpoint_gib, 3), "build_s": build_s, "host_memory_pinned": pinned, **extra}
    if not args.keep:
        shutil.rmtree(export_dir, ignore_errors=True)
    del model
    return result


def release(args) -> None:
    """Between flows: drop what the last one held (GPU cache, page-locked host buffers)."""
    import torch

    gc.collect()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        unregister_host_buffers()


def tensor_digests(export_dir: Path) -> dict[str, str]:
    """sha256 of every exported tensor (dtype, shape, bytes) by name: independent of how the writer split shards."""
    import hashlib

    import torch
    from safetensors import safe_open

    digests = {}
    for path in sorted(export_dir.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():
                tensor = handle.get_tensor(name)
                digest = hashlib.sha256(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
                digests[name] = digest.hexdigest()
    return digests


def combined(digests: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256("".join(f"{name}={value};" for name, value in sorted(digests.items())).encode()).hexdigest()


def differing(result: dict, reference: dict) -> dict:
    """Which exported tensors differ between two runs (by digest), for the JSON: count and the first names."""
    ours, theirs = result["tensor_digests"], reference["tensor_digests"]
    names = sorted(n for n in set(ours) | set(theirs) if ours.get(n) != theirs.get(n))
    return {"vs": reference["flow"], "tensors": len(names), "of": len(theirs), "first": names[:8]}


def warm_up(args, config) -> float:
    """One-layer run of (a) with few samples: Triton/kernels compile here, not inside the first timed flow."""
    start = time.perf_counter()
    model, _, _ = build_model(args, 1, host=False)
    directory = args.export_dir / "warmup"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    plain_modelopt(args, model, config, calibration_data(args, min(32, args.samples)), directory)
    shutil.rmtree(directory, ignore_errors=True)
    del model
    release(args)
    return round(time.perf_counter() - start, 2)


# -- report ------------------------------------------------------------------------------------------------

def environment(args) -> dict:
    import platform
    from importlib.metadata import version

    import torch

    return {"gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
            "python": platform.python_version(), "torch": torch.__version__, "transformers": version("transformers"),
            "nvidia-modelopt": version("nvidia-modelopt"), "cuda": torch.version.cuda}


def table(results: list[dict]) -> str:
    baseline = next((r for r in results if r["flow"] == "modelopt"), None)
    header = (f"{'flow':16} {'layers':>6} {'samples':>7} {'calib s':>8} {'export s':>8} {'calib/L':>8} "
              f"{'export/L':>8} {'peak GiB':>8} {'ckpt GiB':>8} {'(x)/(a)':>8}")
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = "-"
        if baseline and r["samples"] == baseline["samples"]:
            ratio = f"{(r['calibration_s'] + r['export_s']) / (baseline['calibration_s'] + baseline['export_s']):.3f}"
        lines.append(f"{r['flow']:16} {r['layers']:>6} {r['samples']:>7} {r['calibration_s']:>8.2f} "
                     f"{r['export_s']:>8.2f} {r['calibration_s_per_layer']:>8.3f} {r['export_s_per_layer']:>8.3f} "
                     f"{r['peak_gpu_gib'] if r['peak_gpu_gib'] is not None else '-':>8} {r['checkpoint_gib']:>8} "
                     f"{ratio:>8}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import resource

    args = parse_args(argv)
    config = quant_config(args)
    data = calibration_data(args, args.samples)
    env = environment(args)
    print(f"[bench] {json.dumps(env)}", flush=True)
    warmup_s = warm_up(args, config) if args.warmup else None
    runs, errors = [], []
    for repeat in range(args.repeat):
        for flow in args.flows.split(","):
            result = None
            try:
                result = {**run_flow(args, flow, config, data), "repeat": repeat}
            except Exception as exc:  # noqa: BLE001 - one failed flow must not lose the others' numbers
                import traceback

                traceback.print_exc()
                errors.append({"flow": flow, "repeat": repeat, "error": f"{type(exc).__name__}: {exc}"[:500]})
                print(f"[bench] {json.dumps(errors[-1])}", flush=True)
            release(args)  # after the except block: its traceback no longer holds the failed flow's model
            if result is None:
                continue
            reference = next((r for r in runs if "tensor_digests" in r and r["flow"] == "orchestrator"), None)
            if reference is not None and "tensor_digests" in result:
                result["differs"] = differing(result, reference)
            printable = {k: v for k, v in result.items() if k != "tensor_digests"}
            print(f"[bench] {json.dumps(printable)}", flush=True)
            runs.append(result)
    for run in runs:
        run.pop("tensor_digests", None)
    results = [min((r for r in runs if r["flow"] == flow), key=lambda r: r["calibration_s"] + r["export_s"])
               for flow in dict.fromkeys(args.flows.split(",")) if any(r["flow"] == flow for r in runs)]
    peak_rss_gib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(table(results))
    print(f"[bench] warm-up {warmup_s} s, peak host RSS {peak_rss_gib} GiB", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "args": {k: str(v) for k, v in vars(args).items()},
                                         "warmup_s": warmup_s, "peak_host_rss_gib": peak_rss_gib,
                                         "results": results, "runs": runs, "errors": errors}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
