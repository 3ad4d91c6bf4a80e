"""How many entries an untrusted zip holds, counted before ``zipfile`` builds a ZipInfo (~0.5 KB)
for each: a directory of millions of empty entries is a memory bomb, and the count in the end
record may lie (``zipfile`` reads the directory by its size). Shared by NPZ and image archives."""

from __future__ import annotations

import io
import struct
from typing import IO

_END = b"PK\x05\x06"
_END_SIZE = 22


def count_entries(fp: IO[bytes], limit: int) -> int | None:
    """Central-directory entries, counted up to ``limit + 1``; None when the file has no valid
    end record or directory (not a zip). Leaves ``fp`` at the start."""
    size = fp.seek(0, io.SEEK_END)
    start = max(0, size - _END_SIZE - 65_535)
    fp.seek(start)
    tail = fp.read()
    pos = tail.rfind(_END)
    if pos < 0 or pos + _END_SIZE > len(tail):
        return None
    (cd_size,) = struct.unpack_from("<I", tail, pos + 12)
    cd_end = start + pos
    if cd_end >= 76:  # zip64: its 56-byte record and 20-byte locator precede the end record
        fp.seek(cd_end - 76)
        zip64 = fp.read(76)
        if zip64[:4] == b"PK\x06\x06" and zip64[56:60] == b"PK\x06\x07":
            (cd_size,) = struct.unpack_from("<Q", zip64, 40)
            cd_end -= 76
    if cd_size > cd_end:
        return None
    fp.seek(cd_end - cd_size)
    directory = fp.read(cd_size)
    count = at = 0
    while count <= limit and directory[at : at + 4] == b"PK\x01\x02" and at + 46 <= cd_size:
        name_len, extra_len, comment_len = struct.unpack_from("<3H", directory, at + 28)
        at += 46 + name_len + extra_len + comment_len
        count += 1
    fp.seek(0)
    return count
