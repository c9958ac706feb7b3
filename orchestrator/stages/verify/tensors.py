"""Checks that hold for any checkpoint: readable layout, finite values, and the NVFP4 linear contract.

`TensorIndex` maps tensor names to the file holding them, so a sharded HF checkpoint and a
single TRT-LLM rank file are checked by the same code. Values are read lazily (headers
first, then only the scales and the float tensors, chunk by chunk); packed U8 weights are
never read: every byte is a valid pair of E2M1 codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.nvfp4 import BLOCK_SIZE
from orchestrator.stages.verify.report import Violation
from orchestrator.stages.verify.safetensors_file import FLOAT_DTYPES, SafetensorsFile, TensorInfo


@dataclass(frozen=True)
class ScaleNames:
    """How one checkpoint kind names the tensors of a quantized linear."""

    weight_scale: str
    weight_scale_2: str
    input_scale: str

    @property
    def suffixes(self) -> tuple[str, ...]:
        return (self.weight_scale, self.weight_scale_2, self.input_scale)


class TensorIndex:
    """Every tensor of a set of files, by name."""

    def __init__(self, files: Iterable[SafetensorsFile]):
        self.files = list(files)
        self.where: dict[str, SafetensorsFile] = {}
        self.duplicates: list[str] = []
        for file in self.files:
            for name in file.tensors:
                if name in self.where:
                    self.duplicates.append(name)
                self.where[name] = file
        self.broken: set[str] = set()  # tensors whose bytes cannot be read as the header says

    def info(self, name: str) -> TensorInfo | None:
        file = self.where.get(name)
        return file.tensors[name] if file else None

    def names(self) -> list[str]:
        return sorted(self.where)

    def chunks(self, name: str):
        return self.where[name].chunks(name)

    def label(self, name: str) -> str:
        return f"{name} ({self.where[name].path.name})" if name in self.where else name


def open_files(paths: Iterable[Path]) -> tuple[list[SafetensorsFile], list[Violation]]:
    """Parse each file's header; an unreadable header is a violation, not a crash."""
    from orchestrator.errors import UserError

    files, violations = [], []
    for path in paths:
        try:
            files.append(SafetensorsFile(path))
        except UserError as exc:
            violations.append(Violation(path.name, "layout", exc.message))
    return files, violations


def layout_violations(index: TensorIndex) -> Iterator[Violation]:
    for name in index.duplicates:
        yield Violation(name, "layout", "appears in more than one file")
    for file in index.files:
        for name, problem in file.layout_problems():
            index.broken.add(name)
            yield Violation(f"{name} ({file.path.name})", "layout", problem)


def finite_violations(index: TensorIndex, names: Iterable[str]) -> Iterator[Violation]:
    """NaN or Inf in any float tensor (read chunk by chunk)."""
    import numpy as np

    for name in names:
        info = index.info(name)
        if info is None or info.dtype not in FLOAT_DTYPES or name in index.broken:
            continue
        for chunk in index.chunks(name):
            bad = int(np.count_nonzero(~np.isfinite(chunk)))
            if bad:
                yield Violation(index.label(name), "finite", f"{bad} NaN/Inf value(s) in a chunk of {chunk.size}")
                break


def positive_violations(index: TensorIndex, name: str, rule: str) -> Iterator[Violation]:
    """A scale must be finite and > 0: a zero or negative scale zeroes or flips a block."""
    import numpy as np

    if name in index.broken:
        return
    for chunk in index.chunks(name):
        if not np.all(np.isfinite(chunk)):
            yield Violation(index.label(name), rule, "NaN/Inf scale value(s); scales must be finite and positive")
            return
        if np.any(chunk <= 0):
            yield Violation(index.label(name), rule,
                            f"{int(np.count_nonzero(chunk <= 0))} scale value(s) <= 0; scales must be positive")
            return


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def nvfp4_linear_violations(index: TensorIndex, module: str, names: ScaleNames, expected: tuple[int, ...] | None,
                            needs_input_scale: bool) -> Iterator[Violation]:
    """The NVFP4 contract of one quantized linear (reference/nvfp4.md).

    weight U8 [..., out, in/2]; weight_scale F8_E4M3 [..., out, in/16]; weight_scale_2 F32 (one per
    tensor, or per stacked expert); input_scale F32 scalar; config.json fixes [out, in].
    """
    weight_name = f"{module}.weight"
    weight = index.info(weight_name)
    if weight is None:
        yield Violation(weight_name, "nvfp4.weight-present", "scales exist but the packed weight is missing")
        return
    if weight.dtype != "U8":
        yield Violation(index.label(weight_name), "nvfp4.weight-dtype",
                        f"is {weight.dtype}; a quantized weight is U8 (two E2M1 values per byte)")
        logical = weight.shape
    else:
        logical = (*weight.shape[:-1], weight.shape[-1] * 2)
    if expected is not None and logical != expected:
        packed = (*expected[:-1], expected[-1] // 2)
        yield Violation(index.label(weight_name), "nvfp4.shape-config",
                        f"U8{_shape(weight.shape)} holds {_shape(logical)} values; config.json implies "
                        f"{_shape(expected)} (U8{_shape(packed)})")
    if logical[-1] % BLOCK_SIZE:
        yield Violation(index.label(weight_name), "nvfp4.group-size",
                        f"input dim {logical[-1]} is not a multiple of the block size {BLOCK_SIZE}")

    scale_name = f"{module}.{names.weight_scale}"
    scale = index.info(scale_name)
    if scale is None:
        yield Violation(scale_name, "nvfp4.scale-present", "missing: every NVFP4 weight needs its per-block "
                        f"E4M3 scales [out, in/{BLOCK_SIZE}]")
    else:
        want = (*logical[:-1], logical[-1] // BLOCK_SIZE)
        if scale.dtype != "F8_E4M3":
            yield Violation(index.label(scale_name), "nvfp4.scale-dtype", f"is {scale.dtype}, must be F8_E4M3")
        elif scale.shape != want:
            yield Violation(index.label(scale_name), "nvfp4.scale-shape",
                            f"is {_shape(scale.shape)}, must be {_shape(want)} (one scale per {BLOCK_SIZE} "
                            f"values of the weight {_shape(logical)})")
        else:
            yield from positive_violations(index, scale_name, "nvfp4.scale-positive")

    global_name = f"{module}.{names.weight_scale_2}"
    global_scale = index.info(global_name)
    if global_scale is None:
        yield Violation(global_name, "nvfp4.scale-present", "missing: every NVFP4 weight needs its FP32 global scale")
    elif global_scale.dtype != "F32":
        yield Violation(index.label(global_name), "nvfp4.scale-dtype", f"is {global_scale.dtype}, must be F32")
    elif global_scale.shape not in ((), tuple(logical[:-2])):
        yield Violation(index.label(global_name), "nvfp4.scale-shape",
                        f"is {_shape(global_scale.shape)}, must be a scalar (or one per expert: "
                        f"{_shape(tuple(logical[:-2]))})")
    else:
        yield from positive_violations(index, global_name, "nvfp4.scale-positive")

    input_name = f"{module}.{names.input_scale}"
    input_scale = index.info(input_name)
    if input_scale is None:
        if needs_input_scale:
            yield Violation(input_name, "nvfp4.scale-present",
                            "missing: NVFP4 activations need the calibrated FP32 input scale")
    elif input_scale.dtype != "F32":
        yield Violation(index.label(input_name), "nvfp4.scale-dtype", f"is {input_scale.dtype}, must be F32")
    elif input_scale.numel != 1:
        yield Violation(index.label(input_name), "nvfp4.scale-shape",
                        f"is {_shape(input_scale.shape)}, must be a scalar")
    else:
        yield from positive_violations(index, input_name, "nvfp4.scale-positive")


def quantized_modules(index: TensorIndex, names: ScaleNames) -> list[str]:
    """Modules that carry NVFP4 tensors: a U8 weight or any of the scale names."""
    modules = set()
    for name in index.names():
        module, _, leaf = name.rpartition(".")
        if leaf in names.suffixes and leaf != names.input_scale:
            modules.add(module)
        elif leaf == "weight" and index.info(name).dtype == "U8":
            modules.add(module)
    return sorted(modules)


def linear_weights(index: TensorIndex) -> list[str]:
    """Modules with a weight of 2+ dims that is not an embedding table: the linears."""
    modules = []
    for name in index.names():
        module, _, leaf = name.rpartition(".")
        info = index.info(name)
        if leaf == "weight" and len(info.shape) >= 2 and "embed" not in module:
            modules.append(module)
    return modules
