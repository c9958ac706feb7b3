"""The contract of a TensorRT-LLM checkpoint (`export_tensorrt_llm_checkpoint`).

config.json's mapping decides the rank files (rank0..rank{world_size-1}.safetensors, no
others); each rank's quantized linears follow the NVFP4 contract with TRT-LLM's names and
per-rank shapes (tp splits heads and FFN, ep the experts); ranks of one pipeline stage
hold the same tensors, and their shards join into the unsharded shapes config.json implies
(shards.py); routers and lm_head stay unquantized.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from orchestrator.stages.verify.hf import NVFP4_ALGOS
from orchestrator.stages.verify.report import Violation
from orchestrator.stages.verify.shapes import TRTLLM_SHAPES, expected_shape, trtllm_dims
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

TRTLLM_NAMES = ScaleNames("weights_scaling_factor", "weights_scaling_factor_2", "activation_scaling_factor")
ALWAYS_EXCLUDED = ("lm_head", "*.mlp.router")
KV_SCALE = "kv_cache_scaling_factor"
_RANK_FILE = re.compile(r"^rank(\d+)\.safetensors$")
_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.")


@dataclass
class TRTLLMFacts:
    config: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    indexes: list[TensorIndex] = field(default_factory=list)
    quantized: int = 0
    excluded: int = 0
    shards_checked: bool = False  # several rank files (tp or pp), and they join into the unsharded tensors


def is_trtllm_checkpoint(path: Path) -> bool:
    return any(path.glob("rank*.safetensors"))


def check_trtllm(path: Path) -> tuple[TRTLLMFacts, list[Violation]]:
    """All violations of the TRT-LLM checkpoint at `path`, and what it holds."""
    violations: list[Violation] = []
    facts = TRTLLMFacts()
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        return facts, [Violation("config.json", "trtllm.config", "missing: a TRT-LLM checkpoint needs config.json")]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return facts, [Violation("config.json", "trtllm.config", f"not valid JSON: {exc}")]
    facts.config = config
    mapping = config.get("mapping") or {}
    world = mapping.get("world_size", 1)
    tp, pp = mapping.get("tp_size", 1), mapping.get("pp_size", 1)
    if tp * pp != world:
        violations.append(Violation("config.json", "trtllm.mapping", f"tp_size {tp} x pp_size {pp} != world_size {world}"))
    if mapping.get("moe_tp_size", tp) * mapping.get("moe_ep_size", 1) != tp and config.get("moe"):
        violations.append(Violation("config.json", "trtllm.mapping", "moe_tp_size x moe_ep_size != tp_size"))

    present = {int(m.group(1)): p for p in path.glob("rank*.safetensors") if (m := _RANK_FILE.match(p.name))}
    for rank in range(world):
        if rank not in present:
            violations.append(Violation(f"rank{rank}.safetensors", "trtllm.rank-files",
                                        f"missing: mapping.world_size is {world}"))
    for rank in sorted(set(present) - set(range(world))):
        violations.append(Violation(present[rank].name, "trtllm.rank-files", f"extra: mapping.world_size is {world}"))
    facts.files = [present[r] for r in sorted(present) if r < world]

    quant = config.get("quantization") or {}
    algo = quant.get("quant_algo")
    exclude = list(quant.get("exclude_modules") or [])
    dims = trtllm_dims(config)
    layers = config.get("num_hidden_layers")
    for file_path in facts.files:
        files, header_violations = open_files([file_path])
        violations += header_violations
        index = TensorIndex(files)
        facts.indexes.append(index)
        violations += list(layout_violations(index))
        violations += list(_rank_tensors(index, algo, exclude, dims, quant, facts))
        if layers and pp and files:
            seen = {int(m.group(1)) for n in index.names() if (m := _LAYER.match(n))}
            if len(seen) != layers // pp:
                violations.append(Violation(file_path.name, "trtllm.mapping",
                                            f"holds {len(seen)} decoder layers; {layers} layers / pp {pp} = "
                                            f"{layers // pp}"))
    violations += list(_ranks_agree(facts.indexes, tp, pp))
    if tp * pp > 1 and not violations:
        from orchestrator.stages.verify.shards import recombination_violations

        violations += list(recombination_violations(facts.indexes, config))
        facts.shards_checked = not violations
    return facts, violations


def _rank_tensors(index: TensorIndex, algo, exclude, dims, quant, facts: TRTLLMFacts) -> Iterator[Violation]:
    checked: set[str] = set()
    modules = quantized_modules(index, TRTLLM_NAMES)
    facts.quantized += len(modules)
    linears = linear_weights(index)
    facts.excluded += sum(1 for m in linears if any(fnmatchcase(m, p) for p in exclude))
    if algo in NVFP4_ALGOS:
        if quant.get("group_size") not in (None, 16):
            yield Violation("config.json", "nvfp4.group-size", f"group_size {quant.get('group_size')}, must be 16")
        for module in modules:
            yield from nvfp4_linear_violations(index, module, TRTLLM_NAMES, expected_shape(TRTLLM_SHAPES, module, dims),
                                               needs_input_scale=NVFP4_ALGOS[algo])
            checked.update(f"{module}.{s}" for s in TRTLLM_NAMES.suffixes)
    for module in modules:
        if any(fnmatchcase(module, p) for p in (*exclude, *ALWAYS_EXCLUDED)):
            yield Violation(index.label(f"{module}.weight"), "excluded-unquantized",
                            "routers, lm_head and exclude_modules must stay unquantized")
    if algo is not None:
        for module in linears:
            if module not in modules and not any(fnmatchcase(module, p) for p in exclude):
                yield Violation(index.label(f"{module}.weight"), "exclude-list",
                                f"is unquantized ({index.info(module + '.weight').dtype}) but not in "
                                f"quantization.exclude_modules")
    kv_algo = quant.get("kv_cache_quant_algo")
    for name in index.names():
        if name.endswith(".attention.qkv.weight") and kv_algo:
            scale = name.replace(".qkv.weight", f".{KV_SCALE}")
            if index.info(scale) is None:
                yield Violation(scale, "kv-scales", f"missing: kv_cache_quant_algo is {kv_algo}")
            else:
                yield from positive_violations(index, scale, "kv-scales")
                checked.add(scale)
    yield from finite_violations(index, [n for n in index.names() if n not in checked])


def _ranks_agree(indexes: list[TensorIndex], tp: int, pp: int) -> Iterator[Violation]:
    """Ranks of one pipeline stage hold the same names, dtypes and shapes (tp splits evenly)."""
    for stage in range(pp):
        group = indexes[stage * tp:(stage + 1) * tp]
        if len(group) < 2:
            continue
        first = group[0]
        reference = {n: (first.info(n).dtype, first.info(n).shape) for n in first.names()}
        for other in group[1:]:
            theirs = {n: (other.info(n).dtype, other.info(n).shape) for n in other.names()}
            label = other.files[0].path.name if other.files else "rank"
            for name in sorted(set(reference) ^ set(theirs)):
                yield Violation(f"{name} ({label})", "trtllm.rank-consistency",
                                "present in one rank of a pipeline stage but not in another")
            for name in sorted(set(reference) & set(theirs)):
                if reference[name] != theirs[name]:
                    yield Violation(f"{name} ({label})", "trtllm.rank-consistency",
                                    f"{theirs[name][0]}{list(theirs[name][1])} here, "
                                    f"{reference[name][0]}{list(reference[name][1])} in rank {stage * tp}")
