"""Build stage: trtllm-build from the recipe, into a temporary directory renamed on success.

The engine directory is complete or absent: trtllm-build writes into
`.engine.partial` (orchestrator.atomic.partial_path) and only a successful build
is renamed to `engine`, with `orchestrator-build.json` (the argv, the TRT-LLM
version) beside the engine files. The argv names the partial directory, so what
`plan`, `build --dry-run` and the goldens show is exactly what runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.atomic import atomic_dir, partial_path, tree_size
from orchestrator.errors import StageFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.manifest import StageRecord
from orchestrator.stages.trtllm import PathMap, Segment, flatten, not_a_gpu_platform, pinned_image, same_path
from orchestrator.trtllm_spec import render_flag

TOOL = "trtllm-build"
ENGINE_STAMP = "orchestrator-build.json"
LOG_TAIL_LINES = 30


def not_applicable(recipe) -> str | None:
    """Why `orchestrator build` does nothing for this recipe, or None when it builds."""
    if not recipe.platform_info.has_gpu:
        return not_a_gpu_platform(recipe, "build")
    if recipe.build.backend.value == "pytorch":
        return ("build is not applicable with build.backend: pytorch: trtllm-serve loads checkpoint-hf directly "
                "(TRT-LLM >= 1.3 has no trtllm-build); run `orchestrator serve`")
    image = pinned_image(recipe)
    if image is None or not image.ships_trtllm_build:
        where = f"image {image.ref} (TRT-LLM {image.trtllm})" if image else f"platform {recipe.platform.value}"
        return f"{where} has no trtllm-build; use build.backend: pytorch or a 1.2.x image"
    return None


def gemm_plugin(recipe) -> str:
    """The recipe's --gemm_plugin, else what its format needs (nvfp4 for NVFP4)."""
    return recipe.build.gemm_plugin or recipe.format_info.gemm_plugin


def build_segments(recipe, workdir: Path | None = None, path_in_runtime: PathMap = same_path) -> list[Segment]:
    """The trtllm-build argv as recipe-keyed parts; paths as the runner sees them."""
    image = pinned_image(recipe)
    if image is None:
        raise UserError(not_a_gpu_platform(recipe, "build"))
    layout = WorkdirLayout(workdir if workdir is not None else recipe.resolved_workdir)
    build = recipe.build
    version = image.cli_spec

    def opt(key: str, flag: str, value: object) -> Segment:
        return Segment(key, tuple(render_flag(version, TOOL, flag, value)))

    segments = [
        Segment("build", (TOOL,)),
        Segment("build", ("--checkpoint_dir", str(path_in_runtime(layout.checkpoint_trtllm)))),
        Segment("build", ("--output_dir", str(path_in_runtime(partial_path(layout.engine))))),
        opt("build.gemm_plugin", "gemm_plugin", gemm_plugin(recipe)),
        opt("build.max_batch_size", "max_batch_size", build.max_batch_size),
        opt("build.max_input_len", "max_input_len", build.max_input_len),
        opt("build.max_seq_len", "max_seq_len", build.max_seq_len),
        opt("build.max_num_tokens", "max_num_tokens", build.max_num_tokens),
        opt("build.workers", "workers", build.workers),
    ]
    if build.moe_plugin is not None:
        segments.append(opt("build.moe_plugin", "moe_plugin", build.moe_plugin))
    if build.use_fp8_context_fmha is not None:
        segments.append(opt("build.use_fp8_context_fmha", "use_fp8_context_fmha", build.use_fp8_context_fmha))
    if build.kv_cache_type is not None:
        segments.append(opt("build.kv_cache_type", "kv_cache_type", build.kv_cache_type.value))
    for flag, value in build.extra_flags.items():
        segments.append(opt(f"build.extra_flags.{flag.lstrip('-')}", flag, value))
    return segments


def build_argv(recipe, workdir: Path | None = None, path_in_runtime: PathMap = same_path) -> list[str]:
    """trtllm-build argv for `recipe` (output into the partial engine dir), never a shell string."""
    return flatten(build_segments(recipe, workdir, path_in_runtime))


@dataclass
class BuildOutcome:
    engine: Path
    argv: list[str]
    log_path: Path
    skipped: bool = False
    duration_s: float = 0.0
    engine_bytes: int = 0
    tensorrt_llm: str | None = None  # the pinned image's TRT-LLM version

    def stage_record(self) -> StageRecord:
        """What the manifest keeps (run_stage adds the timing, host and status around it)."""
        return StageRecord(status="done", versions={"tensorrt_llm": self.tensorrt_llm},
                           artifacts={"engine": {"path": str(self.engine), "bytes": self.engine_bytes}},
                           metrics={"skipped": self.skipped, "engine_bytes": self.engine_bytes,
                                    "build_s": self.duration_s, "argv": self.argv})


def _up_to_date(engine: Path, argv: list[str]) -> bool:
    stamp = engine / ENGINE_STAMP
    if not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("argv") == argv
    except (OSError, ValueError):
        return False


def run_build(recipe, runner=None, force: bool = False) -> BuildOutcome:
    """Run trtllm-build for `recipe` through `runner` (picked from `runtime:` when None).

    Skipped when the engine's stamp holds the same argv (unless `force`). The manifest record
    is the pipeline's (`orchestrator run`, or run_standalone for `orchestrator build`).
    """
    from orchestrator.manifest import now_iso
    from orchestrator.runtime.base import Job

    reason = not_applicable(recipe)
    if reason:
        raise UserError(reason)
    layout = WorkdirLayout(recipe.resolved_workdir)
    if runner is None:  # first: on a machine without TRT-LLM or Docker, that is the thing to fix
        from orchestrator.runtime.select import select_runner

        runner = select_runner(recipe, TOOL)
    if not (layout.checkpoint_trtllm / "config.json").is_file():
        raise UserError(f"no TensorRT-LLM checkpoint at {layout.checkpoint_trtllm} (config.json missing)",
                        hint=f"run `orchestrator convert {recipe.source_path or 'RECIPE'}` first")
    argv = build_argv(recipe, layout.root, runner.path_in_runtime)
    log_path = layout.log("build")
    image = pinned_image(recipe)
    if not force and _up_to_date(layout.engine, argv):
        return BuildOutcome(layout.engine, argv, log_path, skipped=True, engine_bytes=tree_size(layout.engine),
                            tensorrt_llm=image.trtllm)

    t0 = time.monotonic()
    with atomic_dir(layout.engine) as tmp:
        code = runner.run(Job(stage="build", argv=argv, log_path=log_path))
        if code != 0:
            raise StageFailed(f"trtllm-build exited with code {code} (log: {log_path})",
                              log_tail=_tail(log_path), exit_code=1)
        if not any(tmp.glob("*.engine")):
            raise StageFailed(f"trtllm-build exited 0 but wrote no *.engine into {tmp} (log: {log_path})",
                              log_tail=_tail(log_path))
        stamp = {"argv": argv, "tensorrt_llm": image.trtllm, "image": image.ref, "runtime": runner.name,
                 "recipe": recipe.name, "built_at": now_iso()}
        (tmp / ENGINE_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return BuildOutcome(layout.engine, argv, log_path, duration_s=round(time.monotonic() - t0, 3),
                        engine_bytes=tree_size(layout.engine), tensorrt_llm=image.trtllm)


def _tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    from orchestrator.runtime.local import log_tail

    return log_tail(log_path, lines)
