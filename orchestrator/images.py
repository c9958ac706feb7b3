"""The image lock (docker/images.lock.yaml): which TRT-LLM image each platform and backend runs.

Loading is cheap (YAML only) because recipe validation uses it to know which
TRT-LLM version, and so which CLI, a recipe's build and serve will meet.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from orchestrator.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = "nvcr.io/nvidia/tensorrt-llm/release"
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(rc|a|b|\.post|\.dev)(\d+))?")


def lock_path() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_IMAGES_LOCK", REPO_ROOT / "docker" / "images.lock.yaml"))


@dataclass(frozen=True)
class ImageEntry:
    tag: str
    repository: str
    trtllm: str
    cli_spec: str
    ships_trtllm_build: bool
    architectures: tuple[str, ...]
    cuda: str | None = None
    torch: str | None = None
    modelopt: str | None = None
    digests: dict[str, str | None] = field(default_factory=dict)
    notes: str = ""
    in_lock: bool = True

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    def pinned_ref(self, arch: str) -> str:
        """Reference by digest when the lock has one for `arch`, else by tag."""
        digest = self.digests.get(arch)
        return f"{self.repository}@{digest}" if digest else self.ref


@dataclass(frozen=True)
class ImageLock:
    path: Path
    registry: str
    images: dict[str, ImageEntry]
    platforms: dict[str, dict[str, str]]


def cli_spec_for_version(version: str) -> str | None:
    """The CLI spec key of a TRT-LLM version string, or None when it is not a version."""
    match = _VERSION_RE.match(version)
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    return "1.2" if (major, minor) <= (1, 2) else "main"


@lru_cache(maxsize=4)
def _load(path_str: str, mtime: float) -> ImageLock:
    import yaml

    path = Path(path_str)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"image lock {path} not found", hint="restore docker/images.lock.yaml from git") from None
    except yaml.YAMLError as exc:
        raise UserError(f"image lock {path} is not valid YAML: {exc}") from None
    registry = data.get("registry", DEFAULT_REGISTRY)
    images = {}
    for tag, entry in (data.get("images") or {}).items():
        tag = str(tag)
        images[tag] = ImageEntry(
            tag=tag,
            repository=entry.get("repository", registry),
            trtllm=str(entry["trtllm"]),
            cli_spec=str(entry["cli_spec"]),
            ships_trtllm_build=bool(entry["ships_trtllm_build"]),
            architectures=tuple(entry.get("architectures") or ()),
            cuda=entry.get("cuda"),
            torch=entry.get("torch"),
            modelopt=entry.get("modelopt"),
            digests=dict(entry.get("digests") or {}),
            notes=entry.get("notes", ""),
        )
    platforms = {name: {k: str(v) for k, v in (row or {}).items()} for name, row in (data.get("platforms") or {}).items()}
    return ImageLock(path, registry, images, platforms)


def load_lock(path: Path | None = None) -> ImageLock:
    path = path or lock_path()
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _load(str(path), mtime)


def image_for(platform: str, backend: str, override: str | None = None, lock: ImageLock | None = None) -> ImageEntry | None:
    """The image a recipe's TRT-LLM stages run in; None for platforms without one (cpu).

    Raises UserError when an override names an image whose TRT-LLM version we cannot tell.
    """
    lock = lock or load_lock()
    if override:
        repository, _, tag = override.rpartition(":") if ":" in override.rsplit("/", 1)[-1] else ("", "", override)
        repository = repository or lock.registry
        if tag in lock.images and repository == lock.images[tag].repository:
            return lock.images[tag]
        spec = cli_spec_for_version(tag)
        if spec is None:
            raise UserError(
                f"image={override!r}: cannot tell its TensorRT-LLM version from the tag",
                hint=f"add it to {lock.path.name} with its trtllm version and cli_spec, or use a versioned tag",
            )
        return ImageEntry(tag=tag, repository=repository, trtllm=tag, cli_spec=spec,
                          ships_trtllm_build=spec == "1.2", architectures=(), in_lock=False)
    tag = lock.platforms.get(platform, {}).get(backend)
    if tag is None:
        return None
    if tag not in lock.images:
        raise UserError(f"{lock.path.name}: platforms.{platform}.{backend} names {tag!r}, which is not under images")
    return lock.images[tag]
