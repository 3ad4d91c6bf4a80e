"""The one zip-directory counter behind NPZ and image archives: it counts the directory's real
entries (an end record that lies about them does not fool it) and stops past the limit."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.datasets import parse_upload
from core.errors import InvalidInput
from core.zip_directory import count_entries


def _zip(n: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            archive.writestr(f"m{i}.npy", b"")
    return buffer.getvalue()


def _lying(data: bytes, claimed: int) -> bytes:
    """The same zip with its end record claiming ``claimed`` entries."""
    end = data.rfind(b"PK\x05\x06")
    patched = bytearray(data)
    struct.pack_into("<HH", patched, end + 8, claimed, claimed)
    return bytes(patched)


def test_counts_the_directory_not_the_claim() -> None:
    data = _zip(70)
    assert count_entries(io.BytesIO(data), 1000) == 70
    assert count_entries(io.BytesIO(_lying(data, 1)), 1000) == 70
    assert count_entries(io.BytesIO(data), 10) == 11  # stops one past the limit
    assert count_entries(io.BytesIO(b"not a zip at all"), 10) is None


def test_an_npz_with_too_many_members_is_refused_even_when_its_end_record_lies(
    tmp_path: Path,
) -> None:
    buffer = io.BytesIO()
    pads = {f"pad{i}": np.zeros(1) for i in range(70)}
    np.savez(buffer, X=np.ones((4, 2)), y=np.arange(4), **pads)  # type: ignore[arg-type]
    path = tmp_path / "d.npz"
    path.write_bytes(_lying(buffer.getvalue(), 2))
    with pytest.raises(InvalidInput) as caught:
        parse_upload(
            path, filename="d.npz", content_type=None, label=None,
            settings=Settings(database_url="sqlite://", data_dir=tmp_path),
        )  # fmt: skip
    assert caught.value.code == "invalid_npz" and "more than 64 members" in caught.value.message
