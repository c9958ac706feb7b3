"""Verify a checkpoint against the NVFP4 format contract without loading its tensors.

`verify_checkpoint(path)` detects the kind (unified HF or TRT-LLM rank files), runs every
rule of that kind (hf.py / trtllm.py, shared checks in tensors.py), and either raises
`ContractViolation` (a UserError naming the tensor and the rule: exit 2) or returns a
`VerifyReport` with the size table's numbers.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.stages.verify.report import ContractViolation, VerifyReport, Violation

__all__ = ["ContractViolation", "VerifyReport", "Violation", "verify_checkpoint"]


def verify_checkpoint(path: Path | str, *, original: Path | str | None = None) -> VerifyReport:
    """Check the checkpoint at `path`; `original` is the source model directory for the size comparison."""
    from orchestrator.stages.verify.hf import HF_NAMES, check_hf, is_hf_checkpoint
    from orchestrator.stages.verify.sizes import (
        bytes_by_dtype,
        estimated_original_bytes,
        model_dir_bytes,
        recorded_source_bytes,
    )
    from orchestrator.stages.verify.trtllm import TRTLLM_NAMES, check_trtllm, is_trtllm_checkpoint

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory; give a checkpoint directory (checkpoint-hf/ or checkpoint-trtllm/)")
    if is_trtllm_checkpoint(path):
        kind = "trtllm"
        facts, violations = check_trtllm(path)
        indexes, config = facts.indexes, facts.config
        quant = config.get("quantization") or {}
        quantized, excluded = facts.quantized, facts.excluded
        dtype_name, scale_leaves = config.get("dtype"), set(TRTLLM_NAMES.suffixes)
        mapping = {k: v for k, v in (config.get("mapping") or {}).items() if isinstance(v, int)}
        shards = "ok" if facts.shards_checked else None
    elif is_hf_checkpoint(path):
        kind = "hf"
        facts, violations = check_hf(path)
        indexes = [facts.index] if facts.index else []
        config, quant = facts.config, facts.quant
        quantized, excluded = len(facts.quantized), len(facts.excluded)
        dtype_name, scale_leaves = config.get("torch_dtype") or config.get("dtype"), set(HF_NAMES.suffixes)
        mapping, shards = {}, None
    else:
        raise UserError(f"{path}: no checkpoint here (want config.json with *.safetensors, or rank*.safetensors)",
                        hint="orchestrator verify work/<name>/checkpoint-hf or work/<name>/checkpoint-trtllm")
    if violations:
        raise ContractViolation(str(path), violations)

    if original is not None:
        original_bytes, source = model_dir_bytes(Path(original)), f"--original {original}"
    elif (recorded := recorded_source_bytes(path)) is not None:
        original_bytes, source = recorded, "source model (orchestrator.json)"
    else:
        original_bytes = estimated_original_bytes(indexes, dtype_name, scale_leaves)
        source = f"estimated: logical shapes at {dtype_name or 'bfloat16'}"
    by_dtype = bytes_by_dtype(indexes)
    files = [f.path.name for index in indexes for f in index.files]
    return VerifyReport(
        path=str(path), kind=kind, quant_algo=quant.get("quant_algo"),
        kv_cache_quant_algo=quant.get("kv_cache_quant_algo"), group_size=quant.get("group_size"),
        files=files, tensors=sum(len(index.names()) for index in indexes),
        quantized_modules=quantized, excluded_modules=excluded, checkpoint_bytes=sum(by_dtype.values()),
        bytes_by_dtype=by_dtype, original_bytes=original_bytes, original_source=source, mapping=mapping,
        shards=shards,
    )
