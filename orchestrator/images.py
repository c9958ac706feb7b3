"""The image lock (docker/images.lock.yaml): which TRT-LLM image each platform and backend runs.

Loading is cheap (YAML only) because recipe validation uses it to know which
TRT-LLM version, and so which CLI, a recipe's build and serve will meet.
`resolve_digests` + `write_lock` are `orchestrator images lock`: digests come from the
registry through the Docker engine (docker SDK registry data), and the file is rewritten
atomically with its leading comment block kept (everything else in it is data).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = "nvcr.io/nvidia/tensorrt-llm/release"
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(rc|a|b|\.post|\.dev)(\d+))?")
# Host architecture -> the OCI platform of its image in a manifest list.
DOCKER_PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


def lock_path() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_IMAGES_LOCK", REPO_ROOT / "docker" / "images.lock.yaml"))


@dataclass(frozen=True)
class ImageEntry:
    tag: str
    repository: str
    trtllm: str | None  # None: unknown (a moving tag)
    cli_spec: str | None
    ships_trtllm_build: bool | None  # None: not confirmed either way (treated as "do not rely on it")
    architectures: tuple[str, ...]
    cuda: str | None = None
    torch: str | None = None
    modelopt: str | None = None
    digests: dict[str, str | None] = field(default_factory=dict)
    notes: str = ""
    in_lock: bool = True
    source: str = ""
    moving: bool = False

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


def _text(value: Any) -> str | None:
    """YAML scalars as text (an unquoted 13.1 is a float to YAML, a version to us)."""
    return None if value is None else str(value)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"image lock {path} not found", hint="restore docker/images.lock.yaml from git") from None
    except yaml.YAMLError as exc:
        raise UserError(f"image lock {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"image lock {path} is not a mapping (schema_version, registry, images, platforms)")
    return data


@lru_cache(maxsize=4)
def _load(path_str: str, mtime: float) -> ImageLock:
    path = Path(path_str)
    data = _read(path)
    registry = data.get("registry", DEFAULT_REGISTRY)
    images = {}
    for tag, entry in (data.get("images") or {}).items():
        tag = str(tag)
        ships = entry.get("ships_trtllm_build")
        images[tag] = ImageEntry(
            tag=tag,
            repository=entry.get("repository", registry),
            trtllm=_text(entry.get("trtllm")),
            cli_spec=_text(entry.get("cli_spec")),
            ships_trtllm_build=None if ships is None else bool(ships),
            architectures=tuple(entry.get("architectures") or ()),
            cuda=_text(entry.get("cuda")),
            torch=_text(entry.get("torch")),
            modelopt=_text(entry.get("modelopt")),
            digests=dict(entry.get("digests") or {}),
            notes=" ".join(str(entry.get("notes", "")).split()),
            source=" ".join(str(entry.get("source", "")).split()),
            moving=bool(entry.get("moving", False)),
        )
    platforms = {name: {k: str(v) for k, v in (row or {}).items()} for name, row in (data.get("platforms") or {}).items()}
    for name, row in platforms.items():
        for backend, tag in row.items():
            pinned = images.get(tag)
            if pinned is not None and (pinned.moving or pinned.cli_spec is None):
                raise UserError(f"{path.name}: platforms.{name}.{backend} pins {tag!r}, a tag whose TRT-LLM version "
                                "is unknown (moving); pin a versioned tag")
    return ImageLock(path, registry, images, platforms)


def load_lock(path: Path | None = None) -> ImageLock:
    path = path or lock_path()
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    return _load(str(path), mtime)


def image_for(platform: str, backend: str, override: str | None = None, lock: ImageLock | None = None) -> ImageEntry | None:
    """The image a recipe's TRT-LLM stages run in; None for platforms without one (cpu).

    Raises UserError when an override names an image whose TRT-LLM version we cannot tell.
    """
    lock = lock or load_lock()
    if override:
        repository, _, tag = override.rpartition(":") if ":" in override.rsplit("/", 1)[-1] else ("", "", override)
        repository = repository or lock.registry
        known = lock.images.get(tag)
        if known is not None and repository == known.repository:
            if known.cli_spec is None:
                raise UserError(f"image={override!r} is a moving tag: its TensorRT-LLM version (so its CLI) changes "
                                "under the same name", hint="use a versioned tag, e.g. one `orchestrator images show` lists")
            return known
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


# -- `orchestrator images show` -------------------------------------------------------------------


def pins(lock: ImageLock) -> list[dict[str, Any]]:
    """One row per (platform, backend): the image it runs and what that image carries."""
    from orchestrator.platforms import PLATFORMS

    rows = []
    for platform_name, row in lock.platforms.items():
        arch = PLATFORMS[platform_name].arch if platform_name in PLATFORMS else "?"
        for backend, tag in row.items():
            image = lock.images[tag]
            rows.append({"platform": platform_name, "backend": backend, "arch": arch, "image": image.pinned_ref(arch),
                         "trtllm": image.trtllm, "cuda": image.cuda, "torch": image.torch, "modelopt": image.modelopt,
                         "trtllm_build": image.ships_trtllm_build, "digest": image.digests.get(arch)})
    return rows


# -- `orchestrator images lock` -------------------------------------------------------------------


@dataclass
class Resolution:
    """What the registry said about one tag: its (manifest-list) digest and which of our architectures it has."""

    tag: str
    ref: str
    digest: str | None = None
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None


def resolve_digests(lock: ImageLock, client, tags: list[str] | None = None) -> list[Resolution]:
    """Ask the registry (through the Docker engine) for each image's digest; errors are recorded, not raised."""
    import docker

    unknown = sorted(set(tags or ()) - set(lock.images))
    if unknown:
        raise UserError(f"not in {lock.path.name}: {', '.join(unknown)}", hint="`orchestrator images show` lists the tags")
    results = []
    for tag, entry in lock.images.items():
        if tags and tag not in tags:
            continue
        result = Resolution(tag, entry.ref)
        try:
            data = client.images.get_registry_data(entry.ref)
        except docker.errors.DockerException as exc:
            result.error = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:300]
            results.append(result)
            continue
        result.digest = data.id
        for arch in entry.architectures:
            (result.present if data.has_platform(DOCKER_PLATFORMS.get(arch, arch)) else result.missing).append(arch)
        results.append(result)
    return results


def write_lock(lock: ImageLock, results: list[Resolution], now: datetime | None = None) -> bool:
    """Rewrite the lock file with the resolved digests (atomically); True when anything changed."""
    from orchestrator.atomic import atomic_write_text

    text = lock.path.read_text()
    data = _read(lock.path)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = False
    for result in results:
        if result.digest is None:
            continue
        entry = data["images"][result.tag]
        digests = entry.setdefault("digests", {})
        new = {arch: (result.digest if arch in result.present else None) for arch in entry.get("architectures") or ()}
        if new != {arch: digests.get(arch) for arch in new}:
            digests.update(new)
            entry["resolved_at"] = stamp
            changed = True
    if changed:
        atomic_write_text(lock.path, render_lock(data, header=_header(text)))
    return changed


def _header(text: str) -> str:
    """The leading comment block of the lock file (kept verbatim on rewrite)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def render_lock(data: dict[str, Any], header: str = "") -> str:
    """The lock as YAML in the file's own style: short lists and maps inline, long text folded."""
    import yaml

    class LockDumper(yaml.SafeDumper):
        pass

    def represent_str(dumper, value: str):
        style = ">" if len(value) > 100 else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    def represent_list(dumper, value: list):
        flow = all(not isinstance(v, (dict, list)) for v in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)

    def represent_dict(dumper, value: dict):
        flow = len(value) <= 4 and all(v is None or (isinstance(v, str) and len(v) < 80) for v in value.values())
        return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=flow)

    LockDumper.add_representer(str, represent_str)
    LockDumper.add_representer(list, represent_list)
    LockDumper.add_representer(dict, represent_dict)
    body = yaml.dump(data, Dumper=LockDumper, sort_keys=False, width=110, allow_unicode=True)
    return header + body
