"""Build stage: the trtllm-build argv a recipe implies (running it lives in the runtime layer)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.layout import WorkdirLayout


def _flag_value(value: object) -> str:
    if isinstance(value, bool):
        return "enable" if value else "disable"
    return str(value)


def build_argv(recipe, workdir: Path, output_dir: Path | None = None) -> list[str]:
    """trtllm-build argv for `recipe`, with paths under `workdir` as the tool will see them."""
    layout = WorkdirLayout(workdir)
    build = recipe.build
    gemm_plugin = build.gemm_plugin.value if build.gemm_plugin is not None else recipe.format_info.gemm_plugin
    argv = [
        "trtllm-build",
        "--checkpoint_dir", str(layout.checkpoint_trtllm),
        "--output_dir", str(output_dir or layout.engine),
        "--gemm_plugin", gemm_plugin,
        "--max_batch_size", str(build.max_batch_size),
        "--max_input_len", str(build.max_input_len),
        "--max_seq_len", str(build.max_seq_len),
        "--max_num_tokens", str(build.max_num_tokens),
        "--workers", str(build.workers),
    ]
    if build.moe_plugin is not None:
        argv += ["--moe_plugin", build.moe_plugin]
    if build.use_fp8_context_fmha is not None:
        argv += ["--use_fp8_context_fmha", _flag_value(build.use_fp8_context_fmha)]
    if build.kv_cache_type is not None:
        argv += ["--kv_cache_type", build.kv_cache_type.value]
    for flag, value in build.extra_flags.items():
        argv += [f"--{flag}", _flag_value(value)]
    return argv
