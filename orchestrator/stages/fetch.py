"""Fetch stage: resolve `model.source` to a local directory.

`builtin:<name>` is the model shipped in the package, a path is used in place, and a hub id
is downloaded with `huggingface_hub.snapshot_download` at the recipe's revision into the
hub cache (HF_HOME). The token comes from HF_TOKEN / the hub login and is never logged;
HF_HUB_OFFLINE=1 uses the cache only. Every failure the user can fix (offline, gated, not
found, bad revision) is one UserError line saying what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError

# Only what loading and tokenizing needs: no *.bin/*.pth duplicates, no Mistral-format
# "consolidated" weights next to the HF shards.
ALLOW_PATTERNS = ["README.md", "LICENSE*", "*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.py"]
IGNORE_PATTERNS = ["consolidated*", "original/*"]


@dataclass(frozen=True)
class ModelLocation:
    """Where the source model is on disk, and which revision that is."""

    path: Path
    source: str
    revision: str | None  # the commit a hub download resolved to; None for local/builtin
    kind: str  # "builtin" | "local" | "hub"

    @property
    def bytes(self) -> int:
        """Weight bytes of the model: tensor bytes from the safetensors headers (else the *.bin files' sizes)."""
        from orchestrator.stages.verify.safetensors_file import SafetensorsFile

        files = sorted(self.path.glob("*.safetensors"))
        if files:
            return sum(info.nbytes for f in files for info in SafetensorsFile(f).tensors.values())
        return sum(p.stat().st_size for p in self.path.glob("*.bin"))


def resolve_model(recipe, *, download: bool = True) -> ModelLocation:
    """The local directory of `recipe.model.source`, downloading a hub model when needed."""
    source = recipe.model.source
    if recipe.model.is_builtin:
        from orchestrator.models import builtin_model_dir

        path = builtin_model_dir(source)
        if not (path / "config.json").is_file():
            raise UserError(f"model.source {source}: the embedded model is not in this install ({path} is missing)",
                            hint="reinstall the package, or train it with scripts/train_tiny_mixtral.py")
        return ModelLocation(path, source, None, "builtin")
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"model.source {source}: directory has no config.json; point at the model's top folder")
        return ModelLocation(local.resolve(), source, None, "local")
    return _download(source, recipe.model.revision, local_only=not download)


def fetch(recipe) -> ModelLocation:
    """Fetch stage: resolve (and download) the model; a hub snapshot is linked as <workdir>/model."""
    from orchestrator.layout import WorkdirLayout

    location = resolve_model(recipe)
    if location.kind == "hub":
        link = WorkdirLayout(recipe.resolved_workdir).source_model
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(location.path, target_is_directory=True)
        os.replace(tmp, link)
    return location


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/true/yes/on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download(repo_id: str, revision: str | None, *, local_only: bool) -> ModelLocation:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = local_only or hub_offline()
    at = f"{repo_id}@{revision or 'main'}"
    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS,
                                 ignore_patterns=IGNORE_PATTERNS, local_files_only=offline)
    except HFValidationError:
        raise UserError(f"model.source {repo_id}: not an existing directory nor a hub id (org/name)") from None
    except GatedRepoError:
        raise UserError(f"model.source {repo_id} is gated: accept its license on https://huggingface.co/{repo_id} "
                        "and set HF_TOKEN to a token of that account") from None
    except RevisionNotFoundError:
        raise UserError(f"model.revision {revision!r} does not exist in {repo_id}; "
                        "use a commit sha, tag or branch of that repository") from None
    except RepositoryNotFoundError:
        raise UserError(f"model.source {repo_id} not found on the hub (private? set HF_TOKEN); "
                        "or give a local directory") from None
    except LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE=1 and it is not" if offline else "the hub is unreachable and it is not"
        raise UserError(f"model {at}: {where} in the local cache ({_cache_dir()}); download it once with "
                        "network, or set model.source to a local directory") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise UserError(f"model {at}: access denied ({status}); set HF_TOKEN to a token that can read it") from None
        raise UserError(f"model {at}: download failed ({status or type(exc).__name__}); retry, "
                        "or set model.source to a local directory") from None
    except OSError as exc:  # connection errors, full disk
        raise UserError(f"model {at}: download failed ({type(exc).__name__}: {exc}); check the network and free "
                        f"space in {_cache_dir()}, or use a local directory") from None
    path = Path(path)
    return ModelLocation(path, repo_id, path.name, "hub")


def _cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)
