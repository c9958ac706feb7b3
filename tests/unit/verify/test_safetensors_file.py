"""The lazy safetensors reader: headers, raw reads, float chunks, and broken files."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import UserError
from orchestrator.stages.verify.safetensors_file import SafetensorsFile
from tests.unit.verify.synthetic_checkpoint import Raw, bf16, write_safetensors


def test_reads_header_and_values_lazily(tmp_path):
    values = np.linspace(-2, 2, 4096, dtype=np.float32)
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"a": Raw("F32", values.reshape(64, 64)), "b": Raw("BF16", bf16(values)),
                             "c": Raw("F8_E4M3", np.array([0x38, 0x7E], np.uint8))})
    file = SafetensorsFile(path)
    assert file.tensors["a"].shape == (64, 64) and file.tensors["b"].dtype == "BF16"
    assert np.array_equal(file.read("a"), values.reshape(64, 64))
    chunks = list(file.chunks("a", chunk_bytes=1000))
    assert len(chunks) > 1 and np.array_equal(np.concatenate(chunks), values)
    assert np.allclose(np.concatenate(list(file.chunks("b"))), values, rtol=2**-7)
    assert np.concatenate(list(file.chunks("c"))).tolist() == [1.0, 448.0]
    assert list(file.layout_problems()) == []


def test_header_promising_more_bytes_than_the_file_has(tmp_path):
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"a": Raw("F32", np.zeros(100, np.float32))})
    path.write_bytes(path.read_bytes()[:-4])
    problems = list(SafetensorsFile(path).layout_problems())
    assert problems and problems[0][0] == "a" and "truncated file" in problems[0][1]


@pytest.mark.parametrize("content", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", b"\x04\x00\x00\x00\x00\x00\x00\x00nope"])
def test_garbage_is_a_user_error(tmp_path, content):
    path = tmp_path / "t.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError):
        SafetensorsFile(path)
