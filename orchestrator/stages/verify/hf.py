"""The contract of a unified Hugging Face checkpoint (`export_hf_checkpoint`).

config.json's `quantization_config` and hf_quant_config.json must agree with each other and
with the tensors: quantized linears follow the NVFP4 contract, the excluded modules (and
always lm_head and the MoE routers) stay unquantized, every unquantized linear is listed as
excluded, and a quantized KV cache has its k/v scales.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from orchestrator.stages.verify.report import Violation
from orchestrator.stages.verify.shapes import HF_SHAPES, expected_shape, hf_dims
from orchestrator.stages.verify.tensors import (
    ScaleNames,
    TensorIndex,
    finite_violations,
    layout_violations,
    linear_weights,
    nvfp4_linear_violations,
    open_files,
    positive_violations,
    quantized_modules,
)

HF_NAMES = ScaleNames("weight_scale", "weight_scale_2", "input_scale")
# quant_algo values that follow the NVFP4 contract, and whether activations are quantized too.
NVFP4_ALGOS = {"NVFP4": True, "NVFP4_AWQ": True, "W4A16_NVFP4": False}
# Modules the contract keeps unquantized whatever the recipe says (reference/nvfp4.md).
ALWAYS_EXCLUDED = ("lm_head", "*.block_sparse_moe.gate", "*.mlp.gate", "*router*")
KV_SCALES = {"k_proj": "k_scale", "v_proj": "v_scale"}


@dataclass
class HFFacts:
    config: dict[str, Any] = field(default_factory=dict)
    quant: dict[str, Any] = field(default_factory=dict)  # hf_quant_config.json "quantization"
    files: list[Path] = field(default_factory=list)
    index: TensorIndex | None = None
    quantized: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


def is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors")) and not any(
        path.glob("rank*.safetensors"))


def _read_json(path: Path, violations: list[Violation], rule: str) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        violations.append(Violation(path.name, rule, f"not valid JSON: {exc}"))
        return None


def _excluded(module: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(module, p) for p in patterns)


def check_hf(path: Path) -> tuple[HFFacts, list[Violation]]:
    """All violations of the unified HF checkpoint at `path`, and what it holds."""
    violations: list[Violation] = []
    facts = HFFacts()
    config = _read_json(path / "config.json", violations, "hf.config")
    if config is None:
        violations.append(Violation("config.json", "hf.config", "missing or unreadable"))
        return facts, violations
    facts.config = config
    hf_quant = _read_json(path / "hf_quant_config.json", violations, "hf.quant-config") or {}
    facts.quant = hf_quant.get("quantization") or {}
    violations += list(_config_consistency(config, facts.quant, bool(hf_quant)))

    facts.files = sorted(path.glob("*.safetensors"))
    files, header_violations = open_files(facts.files)
    violations += header_violations
    violations += list(_shard_index(path, files))
    index = facts.index = TensorIndex(files)
    violations += list(layout_violations(index))

    algo = facts.quant.get("quant_algo")
    exclude = list(facts.quant.get("exclude_modules") or [])
    facts.quantized = quantized_modules(index, HF_NAMES)
    facts.excluded = [m for m in linear_weights(index) if _excluded(m, exclude)]
    dims = hf_dims(config)
    checked: set[str] = set()
    if algo in NVFP4_ALGOS:
        group = facts.quant.get("group_size")
        if group not in (None, 16):
            violations.append(Violation("hf_quant_config.json", "nvfp4.group-size", f"group_size {group}, must be 16"))
        for module in facts.quantized:
            violations += list(nvfp4_linear_violations(index, module, HF_NAMES, expected_shape(HF_SHAPES, module, dims),
                                                       needs_input_scale=NVFP4_ALGOS[algo]))
            checked.update(f"{module}.{s}" for s in HF_NAMES.suffixes)
    elif algo is None and facts.quantized:
        violations.append(Violation(index.label(f"{facts.quantized[0]}.weight"), "hf.quant-config",
                                    "quantized tensors but no quant_algo in hf_quant_config.json"))
    else:  # another format: its scales at least must be finite and positive
        for module in facts.quantized:
            for leaf in HF_NAMES.suffixes:
                if index.info(f"{module}.{leaf}") is not None:
                    violations += list(positive_violations(index, f"{module}.{leaf}", "scale-positive"))
                    checked.add(f"{module}.{leaf}")

    violations += list(_exclusions(index, facts.quantized, exclude, algo))
    violations += list(_kv_scales(index, facts.quant.get("kv_cache_quant_algo"), checked))
    violations += list(finite_violations(index, [n for n in index.names() if n not in checked]))
    return facts, violations


def _config_consistency(config: dict[str, Any], quant: dict[str, Any], has_hf_quant: bool) -> Iterator[Violation]:
    qc = config.get("quantization_config")
    if qc is None:
        if has_hf_quant:
            yield Violation("config.json", "hf.quant-config",
                            "no quantization_config, but hf_quant_config.json exists")
        return
    if not has_hf_quant:
        yield Violation("hf_quant_config.json", "hf.quant-config", "missing, but config.json has a quantization_config")
        return
    if qc.get("quant_algo") != quant.get("quant_algo"):
        yield Violation("config.json", "hf.quant-config", f"quantization_config.quant_algo {qc.get('quant_algo')!r} "
                        f"!= hf_quant_config.json {quant.get('quant_algo')!r}")
    ignore, exclude = set(qc.get("ignore") or []), set(quant.get("exclude_modules") or [])
    if ignore != exclude:
        diff = sorted(ignore ^ exclude)
        yield Violation("config.json", "hf.quant-config",
                        f"quantization_config.ignore and hf_quant_config.json exclude_modules differ on {diff[:5]}")
    for group_name, group in (qc.get("config_groups") or {}).items():
        size = (group.get("weights") or {}).get("group_size")
        if quant.get("group_size") is not None and size is not None and size != quant["group_size"]:
            yield Violation("config.json", "hf.quant-config", f"config_groups.{group_name}.weights.group_size {size} "
                            f"!= hf_quant_config.json group_size {quant['group_size']}")
    if bool(qc.get("kv_cache_scheme")) != bool(quant.get("kv_cache_quant_algo")):
        yield Violation("config.json", "hf.quant-config", "kv_cache_scheme and hf_quant_config.json "
                        f"kv_cache_quant_algo ({quant.get('kv_cache_quant_algo')}) disagree")


def _shard_index(path: Path, files) -> Iterator[Violation]:
    """model.safetensors.index.json must name files that exist and hold the tensors it says."""
    index_path = path / "model.safetensors.index.json"
    if not index_path.is_file():
        return
    weight_map = json.loads(index_path.read_text()).get("weight_map", {})
    by_name = {f.path.name: f for f in files}
    for tensor, file_name in weight_map.items():
        file = by_name.get(file_name)
        if file is None:
            yield Violation(tensor, "hf.shard-index", f"index names {file_name}, which is missing")
        elif tensor not in file:
            yield Violation(tensor, "hf.shard-index", f"index says {file_name}, the tensor is not there")


def _exclusions(index: TensorIndex, quantized: list[str], exclude: list[str], algo: str | None) -> Iterator[Violation]:
    quantized_set = set(quantized)
    for module in quantized:
        if _excluded(module, exclude):
            yield Violation(index.label(f"{module}.weight"), "excluded-unquantized",
                            "is quantized but listed in exclude_modules")
        elif _excluded(module, list(ALWAYS_EXCLUDED)):
            yield Violation(index.label(f"{module}.weight"), "excluded-unquantized",
                            "lm_head and MoE routers must stay unquantized")
    if algo is None:
        return
    for module in linear_weights(index):
        if module not in quantized_set and not _excluded(module, exclude):
            yield Violation(index.label(f"{module}.weight"), "exclude-list",
                            f"is unquantized ({index.info(module + '.weight').dtype}) but not in exclude_modules: "
                            f"a loader would read it as {algo}")


def _kv_scales(index: TensorIndex, kv_algo: str | None, checked: set[str]) -> Iterator[Violation]:
    for name in index.names():
        module, _, leaf = name.rpartition(".")
        projection = module.rpartition(".")[2]
        if leaf == "weight" and projection in KV_SCALES:
            scale = f"{module}.{KV_SCALES[projection]}"
            if kv_algo and index.info(scale) is None:
                yield Violation(scale, "kv-scales", f"missing: kv_cache_quant_algo is {kv_algo}")
            elif kv_algo:
                yield from positive_violations(index, scale, "kv-scales")
                checked.add(scale)
        elif leaf in KV_SCALES.values() and not kv_algo:
            yield Violation(index.label(name), "kv-scales", "a KV-cache scale, but kv_cache_quant_algo is null")
