"""Subnormal floats flushed to zero while training (x86-64 with glibc; elsewhere a no-op).

Weights and gradients that decay towards zero pass through subnormal values, and arithmetic
on those takes a slow path in the CPU: measured on this project's machines, setting the SSE
control register's flush-to-zero and denormals-are-zero bits made a batch-1 step 20 % faster
and the large network 4 % faster. A value below 1.2e-38 (float32) becomes 0 instead, far below
anything training can resolve. The register belongs to the calling thread, so the setting
covers the engine's element-wise work and single-threaded BLAS, and it is restored on exit:
code that calls `train()` keeps its own floating-point environment.

glibc's `fenv_t` on x86-64 ends with the MXCSR register (byte 28, 32 bytes in all); `fegetenv`
and `fesetenv` read and write it, so no machine code of our own is involved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import struct
from collections.abc import Iterator
from contextlib import contextmanager

_FENV_BYTES = 32
_MXCSR_OFFSET = 28
_FTZ_DAZ = 0x8000 | 0x0040  # flush-to-zero | denormals-are-zero


def _libm() -> ctypes.CDLL | None:
    if platform.machine().lower() not in ("x86_64", "amd64") or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("m")
    return None if name is None else ctypes.CDLL(name)


_LIBM = _libm()


@contextmanager
def subnormals_flushed() -> Iterator[bool]:
    """Flush subnormals to zero inside the block; yields whether it could."""
    if _LIBM is None:
        yield False
        return
    saved = ctypes.create_string_buffer(_FENV_BYTES)
    if _LIBM.fegetenv(saved) != 0:
        yield False
        return
    flushed = bytearray(saved.raw)
    (mxcsr,) = struct.unpack_from("<I", flushed, _MXCSR_OFFSET)
    struct.pack_into("<I", flushed, _MXCSR_OFFSET, mxcsr | _FTZ_DAZ)
    _LIBM.fesetenv(ctypes.create_string_buffer(bytes(flushed), _FENV_BYTES))
    try:
        yield True
    finally:
        _LIBM.fesetenv(saved)
