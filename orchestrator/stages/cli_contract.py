"""The recipe-side contract with TensorRT-LLM's CLI: every flag, value and llm-api key a recipe
would hand trtllm-build / trtllm-serve, checked against the pinned version's spec.

Recipe validation runs this (orchestrator.recipe.checks), so a flag TRT-LLM does not have
fails before any stage runs; each problem names the recipe key that produced it
(build.extra_flags.<flag>, build.gemm_plugin, serve.llm_api_options.<key>, ...) and
the TRT-LLM version. Light: no torch, a JSON file read once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.stages.trtllm import Segment, flatten
from orchestrator.trtllm_spec import (
    as_flag,
    check_argv,
    check_flags,
    check_llm_api_options,
    has_flag,
    label,
    tool_spec,
)

# Generated llm-api keys -> the recipe key they come from (user keys map to serve.llm_api_options.<key>).
LLM_API_SOURCES = {
    "kv_cache_config.dtype": "serve.kv_cache_dtype",
    "kv_cache_config.free_gpu_memory_fraction": "serve.free_gpu_memory_fraction",
    "cuda_graph_config": "serve.cuda_graphs",
    "moe_config.backend": "serve.moe_backend",
}


@dataclass(frozen=True)
class CliProblem:
    key: str
    value: object
    message: str


def _segment_problems(segments: list[Segment], tool: str, version: str, trtllm: str,
                      extra_flags: dict[str, Any], extra_prefix: str) -> Iterator[CliProblem]:
    """Problems of an argv made of recipe-keyed segments, each reported at its segment's key.

    The recipe's extra flags are judged by their recipe value (check_flags: a switch given a
    value, a bool for a valued flag); the orchestrator's own flags as the argv TRT-LLM parses.
    """
    spec = tool_spec(version, tool)
    if spec is None:
        yield CliProblem(segments[0].key, None, f"{label(version, trtllm)} has no {tool}")
        return
    extras = {f"{extra_prefix}{name.lstrip('-')}": (name, value) for name, value in extra_flags.items()}
    owner: dict[int, str] = {}  # option identity -> key that set it first
    own: list[Segment] = []
    for segment in segments:
        if segment.key in extras:
            name, value = extras[segment.key]
            opt = spec.option(as_flag(name))
            if opt is not None and id(opt) in owner:
                yield CliProblem(segment.key, value, f"{opt.name} is already set from {owner[id(opt)]}; set it there")
                continue
            for problem in check_flags(version, tool, {name: value}, trtllm):
                yield CliProblem(segment.key, value, problem.message)
            continue
        opt = spec.option(segment.tokens[0]) if segment.tokens and segment.tokens[0].startswith("-") else None
        if opt is not None:
            owner.setdefault(id(opt), segment.key)
        own.append(segment)
    key_of_flag = {segment.tokens[0]: segment.key for segment in own if segment.tokens}
    for problem in check_argv(flatten(own), version, trtllm):
        yield CliProblem(key_of_flag.get(problem.flag, own[0].key), problem.value, problem.message)


def _dotted(options: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in options.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _dotted(value, f"{prefix}{key}.")
    return keys


def _llm_api_key(recipe, dotted: str) -> str:
    if dotted in _dotted(recipe.serve.llm_api_options):
        return f"serve.llm_api_options.{dotted}"
    for generated, source in LLM_API_SOURCES.items():
        if dotted == generated or dotted.startswith(generated + "."):
            return source
    return "serve.llm_api_options"


def cli_problems(recipe, image) -> list[CliProblem]:
    """Everything the recipe's build and serve would pass that `image`'s TRT-LLM would reject."""
    from orchestrator.stages.build import TOOL as BUILD_TOOL
    from orchestrator.stages.build import build_segments
    from orchestrator.stages.serve import TOOL as SERVE_TOOL
    from orchestrator.stages.serve import llm_api_options, serve_segments

    version, trtllm = image.cli_spec, image.trtllm
    problems: list[CliProblem] = []
    if recipe.build.backend.value == "tensorrt" and image.ships_trtllm_build and recipe.stage_runs("build"):
        problems += _segment_problems(build_segments(recipe), BUILD_TOOL, version, trtllm, recipe.build.extra_flags,
                                     "build.extra_flags.")
    problems += _segment_problems(serve_segments(recipe), SERVE_TOOL, version, trtllm, recipe.serve.extra_flags,
                                 "serve.extra_flags.")
    if recipe.serve.served_model_name and not has_flag(version, SERVE_TOOL, "--served_model_name"):
        problems.append(CliProblem(
            "serve.served_model_name", recipe.serve.served_model_name,
            f"trtllm-serve of {label(version, trtllm)} has no --served_model_name; it reports the model directory's "
            "name. Remove the key"))
    for problem in check_llm_api_options(llm_api_options(recipe), version, trtllm):
        problems.append(CliProblem(_llm_api_key(recipe, problem.flag), problem.value, problem.message))
    return problems
