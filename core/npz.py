"""Safe ``.npz`` reading and deterministic writing.

Reading untrusted NPZ files is guarded in three places, all before any array is allocated:
the zip directory (entry count), every member's declared size, and every ``.npy`` header
(shape x itemsize, dtype). numpy allocates the declared shape before reading data from a
non-file stream, so an unchecked 200-byte header can ask for terabytes. Arrays are then read
with ``allow_pickle=False``; ``zipfile`` stops a member at its declared size and checks its CRC,
so a member that inflates beyond its declaration is cut off and rejected.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from core.errors import InvalidInput, PayloadTooLarge
from core.zip_directory import count_entries

MAX_MEMBERS = 64
MAX_HEADER_BYTES = 10_000
# Fixed timestamp so equal arrays encode to equal bytes (and equal sha256).
_EPOCH_1980 = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArrayHeader:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    nbytes: int


def _invalid(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, details, code="invalid_npz")


def _read_header(fp: IO[bytes], name: str) -> ArrayHeader:
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = npy_format.read_array_header_1_0(fp, MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, _fortran, dtype = npy_format.read_array_header_2_0(fp, MAX_HEADER_BYTES)
        else:
            raise _invalid(f"array {name!r}: unsupported .npy version {version}", array=name)
    except InvalidInput:
        raise
    except zipfile.BadZipFile as exc:
        # Includes a member inflating past its declared size: zipfile stops there and the
        # CRC no longer matches.
        raise _invalid(f"array {name!r}: corrupt zip member ({exc})", array=name) from exc
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise _invalid(f"array {name!r}: bad .npy header ({exc})", array=name) from exc
    if dtype.hasobject:
        raise InvalidInput(
            f"array {name!r} holds Python objects (pickled data), which are not accepted; "
            "send numeric or string arrays",
            {"array": name, "dtype": str(dtype)},
            code="object_array",
        )
    if any(int(d) < 0 for d in shape):
        raise _invalid(f"array {name!r}: negative dimension in shape {shape}", array=name)
    # Python ints: no overflow however large the declared shape.
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    return ArrayHeader(name=name, shape=tuple(int(d) for d in shape), dtype=dtype, nbytes=nbytes)


def _open(source: Path | bytes) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def inspect_npz(source: Path | bytes, *, max_bytes: int) -> dict[str, ArrayHeader]:
    """Validate an NPZ's structure and return the header of each array, reading no array data.

    ``max_bytes`` caps the members' declared sizes and the arrays' declared sizes (in total).
    """
    try:
        with _open(source) as raw:
            entries = count_entries(raw, MAX_MEMBERS)
            if entries is None:
                raise _invalid("not a valid NPZ (zip) archive: no end of central directory")
            if entries > MAX_MEMBERS:
                raise _invalid(f"NPZ has more than {MAX_MEMBERS} members; no more are accepted")
            with zipfile.ZipFile(raw) as archive:
                infos = archive.infolist()
                declared = sum(info.file_size for info in infos)
                if declared > max_bytes:
                    raise PayloadTooLarge(
                        f"NPZ members declare {declared} bytes uncompressed; "
                        f"the limit is {max_bytes}",
                        {"declared_bytes": declared, "limit_bytes": max_bytes},
                        code="dataset_too_large",
                    )
                headers: dict[str, ArrayHeader] = {}
                for info in infos:
                    if info.is_dir():
                        continue
                    if not info.filename.endswith(".npy"):
                        raise _invalid(
                            f"NPZ member {info.filename!r} is not a .npy array",
                            member=info.filename,
                        )
                    name = info.filename[: -len(".npy")]
                    with archive.open(info) as member:
                        header = _read_header(member, name)
                    if header.nbytes > info.file_size:
                        raise _invalid(
                            f"array {name!r} declares {header.nbytes} bytes of data but its "
                            f"member holds {info.file_size}",
                            array=name,
                        )
                    headers[name] = header
    except zipfile.BadZipFile as exc:
        raise _invalid(f"not a valid NPZ (zip) archive: {exc}") from exc
    total = sum(h.nbytes for h in headers.values())
    if total > max_bytes:
        raise PayloadTooLarge(
            f"NPZ arrays declare {total} bytes; the limit is {max_bytes}",
            {"declared_bytes": total, "limit_bytes": max_bytes},
            code="dataset_too_large",
        )
    return headers


def load_arrays(
    source: Path | bytes, names: Iterable[str], *, max_bytes: int
) -> dict[str, NDArray[Any]]:
    """Load the named arrays from an NPZ after ``inspect_npz``-style checks.

    Accepts a path (an upload) or bytes (a stored blob: checked the same way, it is only as
    trustworthy as the database).
    """
    headers = inspect_npz(source, max_bytes=max_bytes)
    wanted = list(names)
    missing = [n for n in wanted if n not in headers]
    if missing:
        raise _invalid(
            f"NPZ is missing array(s) {missing}; found {sorted(headers)}",
            missing=missing,
            found=sorted(headers),
        )
    out: dict[str, NDArray[Any]] = {}
    try:
        with (
            _open(source) as handle,
            np.load(handle, allow_pickle=False, max_header_size=MAX_HEADER_BYTES) as npz,
        ):
            for name in wanted:
                out[name] = np.asarray(npz[name])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _invalid(f"could not read NPZ arrays: {exc}") from exc
    return out


def encode_arrays(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """Compressed NPZ bytes, deterministic for equal inputs, refusing object arrays."""
    buffer = io.BytesIO()
    # Level 1: float data barely compresses further at higher levels, and is 3x slower.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.dtype.hasobject:
                raise TypeError(f"array {name!r} has dtype object; refusing to pickle")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH_1980)
            info.compress_type = zipfile.ZIP_DEFLATED
            # A ZipInfo built by hand does not inherit the archive's level (attribute renamed
            # to compress_level in Python 3.13; the old name remains as an alias there).
            info._compresslevel = 1  # type: ignore[attr-defined]
            # Streamed into the archive: no uncompressed copy of the array in memory.
            with archive.open(info, mode="w", force_zip64=True) as member:
                npy_format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()
