"""Serve stage: the trtllm-serve argv and llm-api YAML a recipe implies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.layout import WorkdirLayout


def served_model_name(recipe) -> str:
    return recipe.serve.served_model_name or recipe.name


def llm_api_options(recipe) -> dict[str, Any]:
    """The llm-api options YAML for the pytorch backend (empty for tensorrt)."""
    if recipe.build.backend.value != "pytorch":
        return {}
    serve, build = recipe.serve, recipe.build
    options: dict[str, Any] = {
        "kv_cache_config": {
            "dtype": serve.kv_cache_dtype.value,
            "free_gpu_memory_fraction": serve.free_gpu_memory_fraction,
        },
    }
    if serve.cuda_graphs:
        options["cuda_graph_config"] = {"enable_padding": True, "max_batch_size": build.max_batch_size}
    moe_backend = serve.moe_backend.value
    if moe_backend == "auto":
        moe_backend = recipe.platform_info.moe_backend if recipe.format_info.is_nvfp4 else None
    if moe_backend:
        options["moe_config"] = {"backend": moe_backend}
    for key, value in serve.llm_api_options.items():
        if isinstance(value, dict) and isinstance(options.get(key), dict):
            options[key] = {**options[key], **value}
        else:
            options[key] = value
    return options


def serve_argv(recipe, workdir: Path, options_flag: str = "--extra_llm_api_options") -> list[str]:
    """trtllm-serve argv for `recipe`, with paths under `workdir` as the tool will see them."""
    layout = WorkdirLayout(workdir)
    serve, build, ckpt = recipe.serve, recipe.build, recipe.checkpoint
    if build.backend.value == "tensorrt":
        argv = ["trtllm-serve", str(layout.engine), "--tokenizer", str(layout.checkpoint_hf), "--backend", "tensorrt"]
    else:
        argv = ["trtllm-serve", str(layout.checkpoint_hf), "--backend", "pytorch"]
    argv += [
        "--host", serve.host,
        "--port", str(serve.port),
        "--max_batch_size", str(build.max_batch_size),
        "--max_num_tokens", str(build.max_num_tokens),
        "--max_seq_len", str(build.max_seq_len),
        "--tp_size", str(ckpt.tp),
        "--pp_size", str(ckpt.pp),
        "--kv_cache_free_gpu_memory_fraction", str(serve.free_gpu_memory_fraction),
    ]
    if ckpt.ep > 1:
        argv += ["--ep_size", str(ckpt.ep)]
    if build.backend.value == "pytorch":
        argv += [options_flag, str(layout.llm_api_options)]
    for flag, value in serve.extra_flags.items():
        argv += [f"--{flag}"] + ([] if value is True else [str(value)])
    return argv
