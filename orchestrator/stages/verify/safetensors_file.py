"""Read a .safetensors file the lazy way: the JSON header, then one tensor (or one chunk) at a time.

Format: 8 bytes little-endian header length N, N bytes of JSON {name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}}, then the data buffer; offsets are
relative to the buffer. Nothing here loads a whole file, so a 25 GB checkpoint is checked
in constant memory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UserError

if TYPE_CHECKING:
    import numpy as np

# safetensors dtype -> bytes per element. U8 holds two NVFP4 values per byte.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "F8_E4M3"})
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offsets
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return prod(self.shape)


class SafetensorsFile:
    """The header of one file, and lazy reads of its tensors."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) < 8:
                raise UserError(f"{self.path}: truncated file ({self.size} bytes): no safetensors header")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > _MAX_HEADER or 8 + header_len > self.size:
                raise UserError(f"{self.path}: truncated or not a safetensors file "
                                f"(header of {header_len} bytes, file of {self.size})")
            try:
                header = json.loads(fh.read(header_len))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(f"{self.path}: safetensors header is not valid JSON ({exc})") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.data_start = 8 + header_len
        self.tensors: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            self.tensors[name] = TensorInfo(name, entry["dtype"], tuple(entry["shape"]),
                                            self.data_start + begin, self.data_start + end)

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def layout_problems(self) -> Iterator[tuple[str, str]]:
        """(tensor, problem) for byte ranges that cannot hold the tensor the header promises."""
        for info in self.tensors.values():
            size = DTYPE_SIZES.get(info.dtype)
            if size is None:
                yield info.name, f"unknown dtype {info.dtype}"
            elif info.nbytes != info.numel * size:
                yield info.name, (f"header: {info.dtype}{list(info.shape)} needs {info.numel * size} bytes, "
                                  f"its data range holds {info.nbytes}")
            elif info.end > self.size:
                yield info.name, (f"truncated file: data ends at byte {info.end}, "
                                  f"the file has {self.size}")

    def read(self, name: str) -> np.ndarray:
        """The tensor as a numpy array of its raw dtype (BF16 as uint16, F8_E4M3 as uint8)."""
        info = self.tensors[name]
        with open(self.path, "rb") as fh:
            fh.seek(info.begin)
            data = fh.read(info.nbytes)
        return _as_array(data, info.dtype).reshape(info.shape)

    def chunks(self, name: str, chunk_bytes: int = _CHUNK_BYTES) -> Iterator[np.ndarray]:
        """The tensor's elements as flat float32 arrays of at most ~chunk_bytes each."""
        info = self.tensors[name]
        item = DTYPE_SIZES[info.dtype]
        step = max(item, chunk_bytes - chunk_bytes % item)
        with open(self.path, "rb") as fh:
            fh.seek(info.begin)
            remaining = info.nbytes
            while remaining > 0:
                data = fh.read(min(step, remaining))
                if not data:
                    return
                remaining -= len(data)
                yield to_float32(_as_array(data, info.dtype), info.dtype)


def _as_array(data: bytes, dtype: str) -> np.ndarray:
    import numpy as np

    raw = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "F8_E4M3": np.uint8, "F8_E5M2": np.uint8,
           "F8_E8M0": np.uint8, "I16": np.int16, "U16": np.uint16, "F16": np.float16, "BF16": np.uint16,
           "I32": np.int32, "U32": np.uint32, "F32": np.float32, "I64": np.int64, "U64": np.uint64,
           "F64": np.float64}[dtype]
    return np.frombuffer(data, dtype=np.dtype(raw).newbyteorder("<"))


def to_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Raw values (as `_as_array` returns them) to float32."""
    import numpy as np

    if dtype == "BF16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F8_E4M3":
        from orchestrator.nvfp4 import e4m3_to_float

        return e4m3_to_float(values)
    return values.astype(np.float32)
