"""What the build and serve stages share: the pinned TRT-LLM image and argv made of recipe-keyed parts.

An argv is built as `Segment`s, each the tokens one recipe key produces, so the same
code gives the argv that runs, the one `plan` prints, the goldens, and the recipe check
that names `build.extra_flags.<flag>` (not just "--flag") when TRT-LLM would reject it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.images import ImageEntry, image_for

# How the runner sees a host path: identity locally, the mount point in a container.
PathMap = Callable[[Path], Path]


def same_path(path: Path) -> Path:
    return path


@dataclass(frozen=True)
class Segment:
    """argv tokens and the recipe key they come from ("build.max_batch_size", "build.extra_flags.x")."""

    key: str
    tokens: tuple[str, ...]


def flatten(segments: list[Segment]) -> list[str]:
    return [token for segment in segments for token in segment.tokens]


def pinned_image(recipe) -> ImageEntry | None:
    """The image (so the TRT-LLM version and CLI spec) the recipe's build and serve meet; None on cpu."""
    if not recipe.platform_info.has_gpu:
        return None
    return image_for(recipe.platform.value, recipe.build.backend.value, recipe.image)


def not_a_gpu_platform(recipe, stage: str) -> str:
    """The reason a TRT-LLM stage does not apply to a platform without a GPU."""
    return (f"{stage} is not applicable on platform {recipe.platform.value}: TensorRT-LLM needs an NVIDIA GPU; "
            f"`orchestrator run` skips it")


def shown_path_map(recipe) -> PathMap:
    """How `plan` and `--dry-run` show argv paths: as the container sees them when the recipe says
    `runtime: docker`, else as they are here. Not for `auto`: whether auto means docker depends on
    the machine (tools on PATH or not), and what plan prints, like the goldens, must not."""
    if recipe.runtime.value != "docker" or not recipe.platform_info.has_gpu:
        return same_path
    from orchestrator.runtime.select import runner_named

    return runner_named("docker", recipe).path_in_runtime
