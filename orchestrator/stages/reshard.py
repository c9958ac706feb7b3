"""Expert parallelism for a TensorRT-LLM checkpoint: re-cut modelopt's tp export into moe_tp x moe_ep.

modelopt 0.47's `export_tensorrt_llm_checkpoint` splits MoE experts by tensor parallelism
only (mapping.moe_tp_size = tp_size, moe_ep_size = 1; modelopt/torch/export/
tensorrt_llm_utils.py). For tp=T, ep=E TRT-LLM wants moe_tp = T/E and moe_ep = E: rank r
holds experts [e*N/E, (e+1)*N/E) for e = r % E, each cut T/E ways along ffn. Attention,
embeddings and norms keep modelopt's tp split, byte for byte. The layout rules (with their
TensorRT-LLM sources) live in verify/shards.py, shared with the check that joins them back.

Rank files are written one tensor at a time: the headers are planned from the source
headers, then each expert tensor is gathered from the T source ranks, cut, and appended to
the T output files, so memory holds one layer's expert tensor, never a checkpoint.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UserError
from orchestrator.stages.verify.shards import Layout, Split, join, joined_shape, split_experts, split_of

if TYPE_CHECKING:
    import numpy as np

    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

_ALIGN = 8  # safetensors pads its JSON header with spaces to a multiple of 8 bytes


@dataclass
class ReshardResult:
    checkpoint_dir: Path
    rank_files: list[str]
    moe_tp: int
    moe_ep: int
    expert_tensors: int  # per rank


def reshard_experts(source: Path, dest: Path, ep: int) -> ReshardResult:
    """Write `dest` (atomically) as `source` with its experts split moe_tp = tp/ep x moe_ep = ep."""
    from orchestrator.atomic import atomic_dir

    with atomic_dir(dest) as tmp:
        result = write_expert_parallel(source, tmp, ep)
    return replace(result, checkpoint_dir=dest)


def write_expert_parallel(source: Path, out: Path, ep: int) -> ReshardResult:
    """Write the expert-parallel checkpoint into the existing directory `out` (the caller makes it atomic)."""
    config = json.loads((source / "config.json").read_text())
    layout = Layout.from_config(config)
    target = _target_layout(config, layout, ep, source)
    rank_files, expert_tensors = [], 0
    for stage in range(layout.pp):
        ranks = [stage * layout.tp + t for t in range(layout.tp)]
        inputs = [_open(source / f"rank{r}.safetensors") for r in ranks]
        names = list(inputs[0].tensors)
        splits = {name: split_of(name, layout) for name in names}
        shapes = {name: _target_shape(splits[name], inputs[0].tensors[name].shape, layout, target) for name in names}
        plan = [(name, inputs[0].tensors[name].dtype, shapes[name]) for name in names]
        writers = [_RankWriter(out / f"rank{r}.safetensors", plan, file.metadata) for r, file in zip(ranks, inputs, strict=True)]
        try:
            for name in names:
                if splits[name].is_expert:
                    whole = join(splits[name], [file.read(name) for file in inputs], layout)
                    for writer, piece in zip(writers, split_experts(splits[name], whole, target), strict=True):
                        writer.write(name, piece)
                else:
                    for writer, file in zip(writers, inputs, strict=True):
                        writer.write(name, file.read(name))
        finally:
            for writer in writers:
                writer.close()
        rank_files += [f"rank{r}.safetensors" for r in ranks]
        expert_tensors = sum(1 for s in splits.values() if s.is_expert)
    for path in source.iterdir():
        if path.is_file() and not (path.name.startswith("rank") and path.suffix == ".safetensors"):
            shutil.copy2(path, out / path.name)
    config["mapping"] = {**config["mapping"], "moe_tp_size": target.moe_tp, "moe_ep_size": target.moe_ep}
    (out / "config.json").write_text(json.dumps(config, indent=4) + "\n")
    return ReshardResult(checkpoint_dir=out, rank_files=rank_files, moe_tp=target.moe_tp, moe_ep=target.moe_ep,
                         expert_tensors=expert_tensors)


def _target_layout(config: dict, layout: Layout, ep: int, source: Path) -> Layout:
    experts = (config.get("moe") or {}).get("num_experts")
    if not experts:
        raise UserError(f"checkpoint.ep={ep}: {source / 'config.json'} has no MoE experts to split; "
                        "set checkpoint.ep: 1")
    if layout.moe_ep != 1:
        raise UserError(f"{source / 'config.json'}: mapping.moe_ep_size is {layout.moe_ep}; "
                        "expert parallelism is applied once, to modelopt's export (moe_ep_size 1)")
    if layout.tp % ep or experts % ep:
        raise UserError(f"checkpoint.ep={ep} must divide checkpoint.tp ({layout.tp}) and the {experts} experts")
    return replace(layout, moe_tp=layout.tp // ep, moe_ep=ep)


def _target_shape(split: Split, shape: tuple[int, ...], layout: Layout, target: Layout) -> tuple[int, ...]:
    """A tensor's per-rank shape after the re-cut (non-expert tensors keep theirs)."""
    if not split.is_expert:
        return shape
    whole = joined_shape(split, shape, layout)
    first = (whole[0] // target.moe_ep,)
    if split is Split.EXPERT_GATED:
        return (*first, whole[1] // target.moe_tp, *whole[2:])
    if split is Split.EXPERT_IN:
        return (*first, *whole[1:-1], whole[-1] // target.moe_tp)
    return (*first, *whole[1:])


def _open(path: Path) -> SafetensorsFile:
    from orchestrator.stages.verify.safetensors_file import SafetensorsFile

    if not path.is_file():
        raise UserError(f"{path}: missing; the tp export should have written it (see logs/convert.log)")
    return SafetensorsFile(path)


class _RankWriter:
    """A .safetensors file written tensor by tensor, in the order of its (planned) header."""

    def __init__(self, path: Path, plan: list[tuple[str, str, tuple[int, ...]]], metadata: dict[str, str]):
        from math import prod

        from orchestrator.stages.verify.safetensors_file import DTYPE_SIZES

        header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
        self._order, offset = [], 0
        for name, dtype, shape in plan:
            size = prod(shape) * DTYPE_SIZES[dtype]
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            self._order.append((name, size))
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % _ALIGN)
        self.path = path
        self._fh = open(path, "wb")
        self._fh.write(struct.pack("<Q", len(raw)) + raw)
        self._next = 0

    def write(self, name: str, values: np.ndarray) -> None:
        import numpy as np

        expected, size = self._order[self._next]
        data = np.ascontiguousarray(values).tobytes()
        if name != expected or len(data) != size:
            raise RuntimeError(f"{self.path.name}: wrote {name} ({len(data)} bytes) where the header has "
                               f"{expected} ({size} bytes)")
        self._fh.write(data)
        self._next += 1

    def close(self) -> None:
        self._fh.close()
