"""What a bench run measures: URL, model name, tokenizer, engine label and hardware, from the
recipe, the detached server's state file (layout.serve_state) or --url."""

from __future__ import annotations

import json
import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.layout import WorkdirLayout

DEFAULT_WORKDIR = Path("work") / "bench"
TRTLLM_LABEL = "TensorRT-LLM (trtllm-serve)"


@dataclass(frozen=True)
class BenchTarget:
    url: str
    model: str | None  # None: ask GET /v1/models
    tokenizer_dir: Path | None
    tokenizer_required: bool
    engine: str
    hardware: str
    workdir: Path
    recipe_name: str | None


def cpu_description() -> str:
    """'<CPU model> (N cores)' of this machine."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1", socket.gethostname()) or host.startswith("127.")


def read_serve_state(layout: WorkdirLayout) -> dict:
    """The detached server's state file written by `orchestrator serve --detach`, or {}."""
    try:
        data = json.loads(layout.serve_state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _url_from(state: dict, recipe) -> str | None:
    # serve.json (orchestrator.runtime.serve_process.write_state) has base_url, and url = base_url + "/v1".
    for key in ("base_url", "url"):
        if state.get(key):
            url = str(state[key]).rstrip("/")
            return url[: -len("/v1")] if url.endswith("/v1") else url
    host, port = state.get("host"), state.get("port")
    if recipe is not None:
        host, port = host or recipe.serve.host, port or recipe.serve.port
    if not host or not port:
        return None
    if host in ("0.0.0.0", "::", ""):  # bound to all interfaces: connect over loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _tokenizer_candidates(recipe, layout: WorkdirLayout) -> list[Path]:
    from orchestrator.stages.reference_server import original_model_dir

    candidates = [layout.checkpoint_hf]
    try:
        candidates.append(original_model_dir(recipe))
    except Exception:  # noqa: BLE001 - a missing model only removes one candidate
        pass
    candidates.append(layout.source_model)
    return candidates


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()


def resolve_target(recipe=None, *, url: str | None = None, workdir: Path | None = None, model: str | None = None,
                   tokenizer: Path | None = None) -> BenchTarget:
    """Fill in everything not given on the command line from the recipe and the serve state file."""
    from orchestrator.errors import UserError

    root = Path(workdir) if workdir is not None else (recipe.resolved_workdir if recipe is not None
                                                       else DEFAULT_WORKDIR)
    layout = WorkdirLayout(root)
    state = read_serve_state(layout)
    url = (url or _url_from(state, recipe) or "").rstrip("/")
    if not url:
        raise UserError("no endpoint to benchmark", hint="give a RECIPE or --url http://HOST:PORT")
    if url.endswith("/v1"):  # the OpenAI base URL; requests add /v1/... themselves
        url = url[: -len("/v1")]
    if model is None:
        model = state.get("served_model_name") or state.get("model")
        if model is None and recipe is not None:
            from orchestrator.stages.serve import served_model_name

            model = served_model_name(recipe)
    tokenizer_dir = tokenizer
    if tokenizer_dir is None and recipe is not None:
        tokenizer_dir = next((p for p in _tokenizer_candidates(recipe, layout) if _has_tokenizer(p)), None)
    engine = state.get("engine")
    if engine is None and recipe is not None:
        from orchestrator.stages.reference_server import REFERENCE_LABEL

        engine = REFERENCE_LABEL if not recipe.platform_info.has_gpu else TRTLLM_LABEL
    hardware = state.get("hardware")
    if hardware is None and recipe is not None:
        plat = recipe.platform_info
        if plat.has_gpu:
            hardware = f"{plat.gpu} ({plat.name}, {plat.sm_label})"
        elif is_loopback(url):
            hardware = f"CPU: {cpu_description()}"
    return BenchTarget(
        url=url,
        model=model,
        tokenizer_dir=tokenizer_dir,
        tokenizer_required=tokenizer is not None,
        engine=engine or "unknown (--url without a recipe)",
        hardware=hardware or ("unknown (--url without a recipe)"),
        workdir=root,
        recipe_name=recipe.name if recipe is not None else None,
    )


def standalone_settings(overrides: list[str] | None):
    """Bench settings without a recipe (--url): the recipe defaults plus `bench.key=value` overrides."""
    from pydantic import ValidationError

    from orchestrator.errors import RecipeError
    from orchestrator.recipe.bench import BenchSection
    from orchestrator.recipe.loader import apply_overrides, format_validation_error

    bad = [item for item in overrides or [] if not item.startswith("bench.")]
    if bad:
        raise RecipeError(f"without a recipe only bench.* overrides apply, not {', '.join(bad)}")
    data = apply_overrides({"bench": {}}, list(overrides or []))
    try:
        return BenchSection.model_validate(data["bench"])
    except ValidationError as exc:
        lines = [f"bench.{line}" for line in format_validation_error(exc, BenchSection)]
        raise RecipeError(f"bench overrides: {len(lines)} problem(s)", details=lines) from None
