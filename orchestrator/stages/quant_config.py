"""The modelopt quantization config a recipe implies, built the way modelopt's own hf_ptq.py builds it.

Start from the format's preset (platforms.FORMATS[...].modelopt_config, e.g. NVFP4_DEFAULT_CFG),
append the KV-cache preset with `update_quant_cfg_with_kv_cache_quant`, append one
`{"quantizer_name": ..., "enable": False}` entry per recipe exclude pattern (later entries
win in modelopt 0.47's list format), and turn on layerwise calibration with its resume
directory when asked.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

KV_CACHE_CONFIGS = {"fp8": "FP8_KV_CFG", "nvfp4": "NVFP4_KV_CFG"}


def exclude_entry(pattern: str) -> dict[str, Any]:
    """A recipe exclude pattern (module names, fnmatch) as a modelopt entry disabling its quantizers.

    modelopt matches quantizer names (`<module>.weight_quantizer`), so a module pattern gains
    `.*`; a bare name ("lm_head") matches that module at any depth, as modelopt's own defaults do.
    """
    quantizer = pattern if pattern.endswith("*") else f"{pattern}.*"
    if not any(ch in pattern for ch in "*?[") and not quantizer.startswith("*"):
        quantizer = f"*{quantizer}"
    return {"quantizer_name": quantizer, "enable": False}


# Calibration methods that only set quantizer amax values (modelopt's LayerwiseConfig.calib_mutates_weights).
AMAX_ONLY_METHODS = frozenset({"max", "mse", "local_hessian"})


def build_quant_config(recipe, layerwise_dir: Path | None = None) -> dict[str, Any] | None:
    """The config for `mtq.quantize`, or None when the recipe quantizes nothing (format none, kv none)."""
    import modelopt.torch.quantization as mtq

    fmt = recipe.format_info
    kv = recipe.quantize.kv_cache.value
    if fmt.modelopt_config is None and kv == "none":
        return None
    if fmt.modelopt_config is not None:
        preset = getattr(mtq, fmt.modelopt_config, None)
        if preset is None:
            raise UserError(f"quantize.format={fmt.name}: modelopt {_version()} has no {fmt.modelopt_config}",
                            hint="install nvidia-modelopt 0.47.x (pyproject's [quantize] extra)")
        config = copy.deepcopy(preset)
    else:
        config = {"quant_cfg": None, "algorithm": "max"}
    if kv != "none":
        kv_preset = getattr(mtq, KV_CACHE_CONFIGS[kv])
        config = mtq.update_quant_cfg_with_kv_cache_quant(config, kv_preset["quant_cfg"])
    config["quant_cfg"] = list(config["quant_cfg"]) + [exclude_entry(p) for p in recipe.quantize.exclude]
    if layerwise_dir is not None:
        algorithm = config.get("algorithm") or "max"
        algorithm = {"method": algorithm} if isinstance(algorithm, str) else dict(algorithm)
        algorithm["layerwise"] = {"enable": True, "checkpoint_dir": str(layerwise_dir)}
        if algorithm.get("method") in AMAX_ONLY_METHODS:
            # Amax-only calibration leaves weights untouched: without this, modelopt's resume cache
            # saves every layer's full weights (more than the NVFP4 export itself for Mixtral-8x7B).
            algorithm["layerwise"]["calib_mutates_weights"] = False
        config["algorithm"] = algorithm
    return config


def is_layerwise(config: dict[str, Any] | None) -> bool:
    algorithm = (config or {}).get("algorithm")
    return isinstance(algorithm, dict) and bool((algorithm.get("layerwise") or {}).get("enable"))


def algorithm_method(config: dict[str, Any] | None) -> str | None:
    algorithm = (config or {}).get("algorithm")
    return algorithm.get("method") if isinstance(algorithm, dict) else algorithm


def _version() -> str:
    from importlib.metadata import version

    return version("nvidia-modelopt")
