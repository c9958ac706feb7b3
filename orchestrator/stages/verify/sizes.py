"""The numbers of the size table: checkpoint bytes by dtype, and the original size to compare with.

The original size comes, in this order, from: a model directory the user names
(`--original`), the source size quantize/convert recorded in orchestrator.json, or an
estimate from the checkpoint itself (every logical element at the config's dtype).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from orchestrator.stages.verify.safetensors_file import DTYPE_SIZES, SafetensorsFile
from orchestrator.stages.verify.tensors import TensorIndex

PROVENANCE_FILE = "orchestrator.json"
_CONFIG_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def bytes_by_dtype(indexes: list[TensorIndex]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for index in indexes:
        for name in index.names():
            info = index.info(name)
            totals[info.dtype] += info.nbytes
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def model_dir_bytes(path: Path) -> int:
    """Tensor bytes of every *.safetensors file under a model directory (headers only)."""
    from orchestrator.errors import UserError

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise UserError(f"--original {path}: no *.safetensors files there; give the source model's directory")
    return sum(info.nbytes for f in files for info in SafetensorsFile(f).tensors.values())


def recorded_source_bytes(checkpoint: Path) -> int | None:
    """The source model's size as quantize/convert wrote it next to the checkpoint."""
    try:
        data = json.loads((checkpoint / PROVENANCE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    value = (data.get("source") or {}).get("bytes")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def estimated_original_bytes(indexes: list[TensorIndex], dtype_name: str | None, scale_leaves: set[str]) -> int:
    """Bytes of the same model unquantized: logical elements (2 per packed U8) at the config's dtype."""
    per_element = _CONFIG_DTYPE_BYTES.get(str(dtype_name), 2)
    total = 0
    for index in indexes:
        for name in index.names():
            info = index.info(name)
            leaf = name.rpartition(".")[2]
            if leaf in scale_leaves or leaf.endswith(("_scale", "scaling_factor")):
                continue
            elements = info.numel * (2 if info.dtype == "U8" else 1)
            total += elements * (per_element if info.dtype in ("U8", "BF16", "F16", "F32") else DTYPE_SIZES[info.dtype])
    return total
