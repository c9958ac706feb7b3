"""Publish the quantized checkpoint and its card to the Hugging Face Hub (create_repo + upload_folder).

Private by default. The token comes from the environment (HF_TOKEN / HUGGING_FACE_HUB_TOKEN) or
the stored `huggingface-cli login`; it is passed to huggingface_hub and never printed or logged.
A dry run lists the files and sizes and touches no network. Offline, unreachable, unauthorized:
one UserError line each (exit 2).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.layout import WorkdirLayout

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
CARD_NAME = "README.md"


@dataclass
class UploadPlan:
    folder: Path
    repo_id: str
    private: bool
    endpoint: str
    files: list[tuple[str, int]] = field(default_factory=list)  # (path in the repo, bytes)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/{self.repo_id}"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def upload_plan(recipe, repo_id: str, *, private: bool = True) -> UploadPlan:
    """What would be uploaded: every file of checkpoint-hf (card included), checked before any network use."""
    if not REPO_ID_RE.match(repo_id or ""):
        raise UserError(f"--repo-id {repo_id!r}: write ORG/NAME (letters, digits, '.', '_', '-')")
    folder = WorkdirLayout(recipe.resolved_workdir).checkpoint_hf
    if not folder.is_dir():
        raise UserError(f"no quantized checkpoint at {folder}; run `orchestrator run RECIPE` (or quantize) first")
    if not (folder / CARD_NAME).is_file():
        raise UserError(f"{folder} has no {CARD_NAME} model card; run `orchestrator card RECIPE` first")
    files = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return UploadPlan(folder, repo_id, private, hub_endpoint(), files)


def token_source() -> str | None:
    """Where the token will come from (a name, never the value), or None."""
    for var in TOKEN_VARS:
        if os.environ.get(var):
            return var
    from huggingface_hub import get_token

    return "stored login (huggingface-cli login)" if get_token() else None


def publish(plan: UploadPlan) -> str:
    """Create the repo (private unless asked) and upload the folder; return the repo URL."""
    import huggingface_hub
    from huggingface_hub import errors

    from orchestrator.stages.fetch import hub_offline

    if hub_offline():
        raise UserError("HF_HUB_OFFLINE is set: publishing needs the Hugging Face Hub; unset it, or use --dry-run")
    if token_source() is None:
        raise UserError("no Hugging Face token: set HF_TOKEN (a write token) or run `huggingface-cli login`")
    api = huggingface_hub.HfApi(endpoint=plan.endpoint)
    try:
        api.create_repo(plan.repo_id, private=plan.private, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(plan.folder), repo_id=plan.repo_id, repo_type="model",
                          commit_message="Upload quantized checkpoint and model card (trtllm-orchestrator)")
    except errors.OfflineModeIsEnabled:
        raise UserError("HF_HUB_OFFLINE is set: publishing needs the Hugging Face Hub") from None
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise UserError(f"the Hub refused {plan.repo_id} (HTTP {status}): the token cannot write there; "
                            "use a write token for that organisation") from None
        raise UserError(f"the Hub answered HTTP {status} for {plan.repo_id}: {str(exc).splitlines()[0]}") from None
    except (OSError, *_connection_errors()) as exc:
        raise UserError(f"cannot reach the Hugging Face Hub at {plan.endpoint} ({type(exc).__name__}); "
                        "check the network or HF_ENDPOINT, or use --dry-run") from None
    return plan.url


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Network errors of the HTTP library huggingface_hub uses (requests before 1.0, httpx after)."""
    found: list[type[BaseException]] = []
    try:
        import requests

        found.append(requests.exceptions.RequestException)
    except ImportError:
        pass
    try:
        import httpx

        found.append(httpx.TransportError)
    except ImportError:
        pass
    return tuple(found)
