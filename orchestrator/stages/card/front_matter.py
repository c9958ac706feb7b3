"""The card's Hugging Face front matter: license inherited from the base model, base_model, tags, quantization."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LICENSE_KEYS = ("license", "license_name", "license_link")


def read_front_matter(readme: Path) -> dict[str, Any]:
    """The YAML between the leading '---' lines of a model README, or {}."""
    import yaml

    try:
        text = readme.read_text()
    except OSError:
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def source_model_dir(recipe) -> Path | None:
    """The base model's local directory (builtin, local, or the hub cache), never downloading."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.stages.fetch import resolve_model

    try:
        return resolve_model(recipe, download=False).path
    except (OrchestratorError, OSError):
        return None


def inherited_license(model_dir: Path | None) -> tuple[dict[str, Any], str]:
    """({license, license_name?, license_link?}, where it came from); 'other' with the reason when none is found."""
    if model_dir is not None:
        front = read_front_matter(model_dir / "README.md")
        if front.get("license"):
            return {k: front[k] for k in LICENSE_KEYS if front.get(k)}, f"inherited from {model_dir}/README.md"
        try:
            config = json.loads((model_dir / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        if isinstance(config.get("license"), str):
            return {"license": config["license"]}, f"inherited from {model_dir}/config.json"
    where = f"{model_dir}" if model_dir is not None else "the base model (not available locally)"
    return ({"license": "other"},
            f"not found in the front matter of README.md or in config.json of {where}: set to 'other'; "
            "check the base model's license before publishing")


def is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def front_matter(recipe, facts, license_info: dict[str, Any]) -> dict[str, Any]:
    """The metadata block. Values are the recipe's choices and manifest facts, never estimates."""
    fmt = recipe.format_info
    data: dict[str, Any] = dict(license_info)
    if is_hub_id(recipe.model.source):
        data["base_model"] = recipe.model.source
        data["base_model_relation"] = "quantized"
    tags = ["quantized", "modelopt", "tensorrt-llm", fmt.name]
    if fmt.is_nvfp4:
        tags.append("nvfp4")
    if recipe.quantize.kv_cache.value != "none":
        tags.append(f"kv-cache-{recipe.quantize.kv_cache.value}")
    data["tags"] = list(dict.fromkeys(tags))
    data["pipeline_tag"] = "text-generation"
    quantization = {
        "format": fmt.name,
        "quant_algo": facts.value("quant_algo") or fmt.quant_algo,
        "kv_cache_quant_algo": facts.value("kv_cache_quant_algo"),
        "group_size": facts.value("group_size"),
        "tool": "nvidia-modelopt " + str((facts.value("versions") or {}).get("nvidia-modelopt") or "(version not recorded)"),
        "modelopt_config": fmt.modelopt_config,
    }
    data["quantization"] = {k: v for k, v in quantization.items() if v is not None}
    return data


def render_front_matter(data: dict[str, Any]) -> str:
    import yaml

    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n"
