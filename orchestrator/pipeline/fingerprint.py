"""Fingerprints: what a stage's output depends on, hashed.

A stage whose recorded fingerprint equals the one computed now, and whose outputs are
intact, is skipped. Model files are hashed by content, except where a cheaper exact
identity exists (the blob name of a Hugging Face cache file is its hash) or the file is
too large to re-read on every run (then size + mtime stand in, stated in the digest).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

LARGE_FILE = 256 * 1024 * 1024


def digest(data: Any) -> str:
    """sha256 of the canonical JSON of `data`."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path: Path) -> str:
    """A string that changes when the file's content does."""
    if path.is_symlink() and "blobs" in Path(path.resolve()).parts:
        return "blob:" + path.resolve().name  # HF cache: the blob name is the content hash
    stat = path.stat()
    if stat.st_size > LARGE_FILE:
        return f"size+mtime:{stat.st_size}:{stat.st_mtime_ns}"
    return "sha256:" + file_sha256(path)


def tree_digest(root: Path, skip: tuple[str, ...] = (".git", ".cache")) -> str:
    """Digest of every file under `root` (relative names + identities)."""
    entries = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in skip for part in rel.parts) or path.is_dir():
            continue
        entries[str(rel)] = file_identity(path)
    return digest(entries)


def package_versions(*names: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
