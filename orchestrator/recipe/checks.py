"""Cross-field checks: the rules one section cannot judge alone.

Each rule returns problems rather than raising, so the user sees all of them at once.
A problem names the key path, the value and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.images import image_for
from orchestrator.platforms import FORMATS, KNOWN_MODELS
from orchestrator.recipe.quantize import NAMED_DATASETS
from orchestrator.recipe.root import Recipe


@dataclass(frozen=True)
class Problem:
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.message}"


Rule = Callable[[Recipe], Iterator[Problem]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def builds_or_serves_on_gpu(recipe: Recipe) -> bool:
    """True when this recipe would run TensorRT-LLM (build or serve) on its platform."""
    return recipe.platform_info.has_gpu and recipe.stage_runs("build")


def expert_count(recipe: Recipe) -> int | None:
    """The model's expert count when it can be known without a download."""
    if recipe.model.num_experts:
        return recipe.model.num_experts
    known = KNOWN_MODELS.get(recipe.model.source)
    if known:
        return known.num_experts
    config = local_model_dir(recipe)
    if config is not None and (config / "config.json").is_file():
        data = json.loads((config / "config.json").read_text())
        return data.get("num_local_experts") or data.get("num_experts")
    return None


def local_model_dir(recipe: Recipe) -> Path | None:
    from orchestrator.models import builtin_model_dir

    if recipe.model.is_builtin:
        try:
            return builtin_model_dir(recipe.model.source)
        except KeyError:
            return None
    path = Path(recipe.model.source).expanduser()
    return path if path.exists() else None


@rule
def _model_source(recipe: Recipe) -> Iterator[Problem]:
    src = recipe.model.source
    if recipe.model.is_builtin:
        from orchestrator.models import BUILTIN_MODELS

        name = src.split(":", 1)[1]
        if name not in BUILTIN_MODELS:
            yield Problem("model.source", src, f"no built-in model {name!r}; built-ins: {', '.join(BUILTIN_MODELS)}")
        return
    looks_local = src.startswith(("/", ".", "~")) or Path(src).expanduser().exists() or src.count("/") > 1
    if looks_local:
        path = Path(src).expanduser()
        if not path.is_dir():
            yield Problem("model.source", src, "local model directory not found; give a directory with config.json "
                          "or a hub id like org/name")
        elif not (path / "config.json").is_file():
            yield Problem("model.source", src, "directory has no config.json; point at the model's top folder")
    elif src.count("/") != 1:
        yield Problem("model.source", src, "not a hub id (org/name) nor an existing local directory")


@rule
def _parallel_fits_platform(recipe: Recipe) -> Iterator[Problem]:
    plat, ckpt, nodes = recipe.platform_info, recipe.checkpoint, recipe.nodes
    capacity = plat.max_gpus * nodes
    if plat.has_gpu and ckpt.world_size > capacity:
        machines = plat.name if nodes == 1 else f"{nodes} x {plat.name}"
        yield Problem("checkpoint.tp", ckpt.tp,
                      f"tp x pp = {ckpt.world_size} GPUs, but {machines} has at most {capacity}; "
                      f"lower checkpoint.tp/pp, raise nodes (machines serving together) or pick a larger platform")
    if nodes > 1 and not plat.has_gpu:
        yield Problem("nodes", nodes, f"multi-node serving needs a GPU platform; {plat.name} has none. Fix: nodes: 1")
    elif nodes > 1 and ckpt.world_size % nodes != 0:
        yield Problem("nodes", nodes,
                      f"tp x pp = {ckpt.world_size} ranks cannot be spread evenly over {nodes} nodes (MPI starts "
                      f"the same number on each); make checkpoint.tp x pp a multiple of nodes")
    if ckpt.tp % ckpt.ep != 0:
        yield Problem("checkpoint.ep", ckpt.ep,
                      f"must divide checkpoint.tp ({ckpt.tp}): TRT-LLM splits the tp ranks into moe_tp x moe_ep")
    gpus = recipe.quantize.gpus
    if gpus > 1 and (not plat.has_gpu or recipe.quantize.device.value == "cpu"):
        yield Problem("quantize.gpus", gpus, "calibration on several GPUs needs a GPU platform and quantize.device "
                      "auto or cuda")
    elif plat.has_gpu and gpus > plat.max_gpus:
        yield Problem("quantize.gpus", gpus, f"{plat.name} has at most {plat.max_gpus} GPU(s) per host")
    experts = expert_count(recipe)
    if experts is not None and experts % ckpt.ep != 0:
        yield Problem("checkpoint.ep", ckpt.ep, f"must divide the model's {experts} experts")


@rule
def _fsdp2_calibration(recipe: Recipe) -> Iterator[Problem]:
    """FSDP2 ranks each see part of the data; only max calibration (a max over all batches) combines exactly."""
    quant = recipe.quantize
    if quant.multi_gpu != "fsdp2":
        return
    fmt = recipe.format_info
    if fmt.calibration != "max":
        yield Problem("quantize.parallel", "fsdp2",
                      f"{fmt.name} calibrates with {fmt.calibration}, which changes weights from statistics of all "
                      "samples; FSDP2 ranks each see a share. Fix: quantize.parallel: layers")
    elif fmt.modelopt_config is None and quant.kv_cache.value == "none":
        yield Problem("quantize.gpus", quant.gpus, "format none with kv_cache none calibrates nothing. Fix: quantize.gpus: 1")
    if quant.memory.value not in ("auto", "gpu"):
        yield Problem("quantize.memory", quant.memory.value,
                      "quantize.parallel fsdp2 shards the weights over the GPUs itself. Fix: quantize.memory: auto, "
                      "or quantize.parallel: layers")
    if quant.layerwise:
        yield Problem("quantize.layerwise", True, "layerwise calibration runs in one process. Fix: "
                      "quantize.layerwise: false, or quantize.parallel: layers")


@rule
def _format_runs_on_platform(recipe: Recipe) -> Iterator[Problem]:
    plat, fmt = recipe.platform_info, recipe.format_info
    if not builds_or_serves_on_gpu(recipe):
        return
    if plat.sm not in fmt.run_sms:
        fix = f"use quantize.format: {fmt.suggest_instead}" if fmt.suggest_instead else "pick another format"
        yield Problem("platform", plat.name,
                      f"{fmt.why} ({fmt.name}); {plat.name} is {plat.sm_label}. Fix: {fix}, a Blackwell platform, "
                      f"or run.until: convert to only quantize/convert here")
    if recipe.quantize.kv_cache.value == "nvfp4" and not plat.is_blackwell:
        yield Problem("quantize.kv_cache", "nvfp4", f"an NVFP4 KV cache needs Blackwell; {plat.name} is "
                      f"{plat.sm_label}. Fix: kv_cache: fp8")


@rule
def _backend_has_build(recipe: Recipe) -> Iterator[Problem]:
    if not recipe.platform_info.has_gpu:
        return
    backend = recipe.build.backend.value
    try:
        image = image_for(recipe.platform.value, backend, recipe.image)
    except UserError as exc:
        yield Problem("image", recipe.image, exc.message + (f"; {exc.hint}" if exc.hint else ""))
        return
    if image is None:
        yield Problem("platform", recipe.platform.value, f"the image lock pins no image for backend {backend} here")
        return
    if backend == "tensorrt" and not image.ships_trtllm_build and recipe.stage_runs("build"):
        yield Problem("build.backend", backend,
                      f"image {image.ref} (TRT-LLM {image.trtllm}) "
                      f"{'is not known to ship' if image.ships_trtllm_build is None else 'no longer ships'} "
                      f"trtllm-build; use backend: pytorch or a 1.2.x image")


@rule
def _build_options_fit(recipe: Recipe) -> Iterator[Problem]:
    build, fmt = recipe.build, recipe.format_info
    if build.gemm_plugin == "nvfp4" and not fmt.is_nvfp4:
        yield Problem("build.gemm_plugin", "nvfp4",
                      f"the nvfp4 GEMM plugin needs an NVFP4 format, not quantize.format: {fmt.name}; "
                      f"drop it or use {FORMATS[fmt.name].gemm_plugin}")
    if build.gemm_plugin == "fp8" and fmt.name != "fp8":
        yield Problem("build.gemm_plugin", "fp8", f"the fp8 GEMM plugin needs quantize.format: fp8, not {fmt.name}")
    if build.backend.value == "pytorch":
        tensorrt_only = {"gemm_plugin": build.gemm_plugin, "moe_plugin": build.moe_plugin,
                         "use_fp8_context_fmha": build.use_fp8_context_fmha, "kv_cache_type": build.kv_cache_type}
        for key, value in tensorrt_only.items():
            if value is not None:
                yield Problem(f"build.{key}", getattr(value, "value", value),
                              "is a trtllm-build option; backend: pytorch has no build stage. Remove it")
        if build.extra_flags:
            yield Problem("build.extra_flags", build.extra_flags, "trtllm-build flags with backend: pytorch; remove them")
    if build.max_input_len >= build.max_seq_len:
        yield Problem("build.max_input_len", build.max_input_len,
                      f"must be below build.max_seq_len ({build.max_seq_len}) to leave room for output tokens")
    if build.max_num_tokens < build.max_batch_size:
        yield Problem("build.max_num_tokens", build.max_num_tokens,
                      f"must be at least build.max_batch_size ({build.max_batch_size})")
    if recipe.build.backend.value == "tensorrt" and recipe.serve.moe_backend.value != "auto":
        yield Problem("serve.moe_backend", recipe.serve.moe_backend.value,
                      "moe_config.backend is a pytorch-backend (llm-api) setting; with backend: tensorrt the MoE "
                      "kernels come from trtllm-build (build.moe_plugin). Remove it or use backend: pytorch")
    if recipe.build.backend.value == "tensorrt" and recipe.serve.kv_cache_dtype.value != "auto":
        yield Problem("serve.kv_cache_dtype", recipe.serve.kv_cache_dtype.value,
                      "the TensorRT backend takes the KV-cache dtype from the checkpoint (quantize.kv_cache); "
                      "set it to auto")


@rule
def _calibration_and_eval_data(recipe: Recipe) -> Iterator[Problem]:
    cal = recipe.quantize.calibration
    if cal.dataset not in NAMED_DATASETS:
        path = Path(cal.dataset).expanduser()
        if path.suffix not in (".txt", ".jsonl"):
            yield Problem("quantize.calibration.dataset", cal.dataset,
                          f"use one of {', '.join(NAMED_DATASETS)} or a local .txt/.jsonl file")
        elif not path.is_file():
            yield Problem("quantize.calibration.dataset", cal.dataset, "file not found")
    if cal.dataset == "builtin" and not recipe.model.is_builtin:
        yield Problem("quantize.calibration.dataset", "builtin", "only a builtin: model ships its calibration text")
    ppl = recipe.eval.perplexity
    if ppl.stride > ppl.seq_len:
        yield Problem("eval.perplexity.stride", ppl.stride, f"must be <= eval.perplexity.seq_len ({ppl.seq_len})")
    if ppl.dataset not in ("wikitext-2", "builtin"):
        path = Path(ppl.dataset).expanduser()
        if path.suffix not in (".txt", ".jsonl") or not path.is_file():
            yield Problem("eval.perplexity.dataset", ppl.dataset, "use wikitext-2, builtin or an existing .txt/.jsonl")
    if ppl.dataset == "builtin" and not recipe.model.is_builtin:
        yield Problem("eval.perplexity.dataset", "builtin", "only a builtin: model ships held-out text")


@rule
def _bench_fits_engine(recipe: Recipe) -> Iterator[Problem]:
    bench, build = recipe.bench, recipe.build
    if not builds_or_serves_on_gpu(recipe):
        return
    if bench.input_len > build.max_input_len:
        yield Problem("bench.input_len", bench.input_len, f"exceeds build.max_input_len ({build.max_input_len})")
    if bench.input_len + bench.output_len > build.max_seq_len:
        yield Problem("bench.output_len", bench.output_len,
                      f"input_len + output_len exceeds build.max_seq_len ({build.max_seq_len})")


@rule
def _trtllm_cli_accepts(recipe: Recipe) -> Iterator[Problem]:
    """Every flag, value and llm-api key build/serve would pass exists in the pinned TRT-LLM version's CLI."""
    if not recipe.platform_info.has_gpu:
        return
    try:
        image = image_for(recipe.platform.value, recipe.build.backend.value, recipe.image)
    except UserError:
        return  # _backend_has_build reports the image
    if image is None:
        return
    from orchestrator.stages.cli_contract import cli_problems

    for problem in cli_problems(recipe, image):
        yield Problem(problem.key, problem.value, problem.message)


def cross_check(recipe: Recipe) -> list[Problem]:
    """Every cross-field problem of `recipe`, in rule order."""
    problems: list[Problem] = []
    for check in RULES:
        problems.extend(check(recipe))
    return problems
