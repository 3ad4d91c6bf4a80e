"""Hostile NPZ payloads, built without allocating what they claim to hold."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _y_member(n: int = 4) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(n) % 2)
    return buffer.getvalue()


def header_bomb(shape: tuple[int, ...]) -> bytes:
    """~200 bytes whose X.npy header declares ``shape`` float64 (numpy would allocate it)."""
    return _zip({"X.npy": npy_header(shape) + b"\x00" * 64, "y.npy": _y_member()})


def zip_bomb(path: Path, uncompressed_bytes: int) -> None:
    """An X.npy of zeros that inflates to ``uncompressed_bytes`` (streamed, never in memory)."""
    rows = (uncompressed_bytes // 8) // 4
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            member.write(npy_header((rows, 4)))
            chunk = b"\x00" * (1 << 20)
            left = rows * 4 * 8
            while left > 0:
                member.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
        archive.writestr("y.npy", _y_member(rows))


def lying_member(extra_bytes: int, rows: int = 10) -> bytes:
    """X.npy declares (and its header claims) ``rows`` x 2 floats, but inflates ``extra_bytes``
    further."""
    honest = npy_header((rows, 2)) + np.zeros(2 * rows).tobytes()
    data = honest + b"\x00" * extra_bytes
    blob = bytearray(_zip({"X.npy": data, "y.npy": _y_member(rows)}))
    # Rewrite the uncompressed size of X.npy in its local header and central directory entry.
    local = blob.find(b"PK\x03\x04")
    struct.pack_into("<I", blob, local + 22, len(honest))
    central = blob.find(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, len(honest))
    return bytes(blob)


class Canary:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def pickle_npz(canary: Path) -> bytes:
    y = np.empty(4, dtype=object)
    y[:] = [Canary(canary)] * 4
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((4, 2)), y=y)  # savez pickles object arrays by default
    return buffer.getvalue()


def raw_pickle(canary: Path) -> bytes:
    return pickle.dumps(Canary(canary))
