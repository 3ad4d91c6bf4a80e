"""Large predict bodies, read without a Python object per number.

orjson builds a float object (and a list slot) for every number: a body of short numbers
(``0.5,``) grows the process by ~13x its size before numpy sees a value. For a body over
:data:`THRESHOLD` that holds a table (an array of arrays: ``inputs``, ``instances`` or
``dataframe_split.data``), :func:`find_table` instead locates the table and its rows with a
vectorised numpy scan of the structural bytes (``[ ] { } "``: a few per row, not one per
number), block by block, and the caller parses the rest of the body (the *skeleton*, with the
table replaced by :data:`PLACEHOLDER`) as usual and the rows piece by piece
(:meth:`Table.pieces`: ~:data:`PIECE` bytes of rows at a time, each straight into the float64
matrix). Every row's width is counted from its commas before any is parsed, so no row of the
wrong width is ever parsed. Peak memory is the matrix plus a few MiB, whatever the body holds:
too many rows, arrays or objects nested in a row (named from a window of the body), strings.

Measured (8 and 32 MiB of 100-column rows of ``-0.3``-style numbers, in process): read whole
+109 / +439 MiB and 165 / 695 ms; in pieces +19 / +70 MiB (the matrix: 15 / 60 MB) and 74 /
293 ms; refused for its rows (413), 32 MiB cost +439 MiB and 470 ms, now +1 MiB and 15 ms. Under
1 MiB orjson whole is as fast or faster (at 1 MiB: 8.2 vs 8.6 ms), so small bodies keep it.

Why not a library: polars' and pyarrow's JSON readers take objects (or lines), not an array of
arrays, and neither says which row and column a bad value is in; pysimdjson's ``as_buffer`` would
be a new compiled dependency that refuses NaN, null and mixed types without naming a cell. orjson
on bounded pieces keeps every message of the small-body path (row, column, the value).

:func:`find_table` returns ``None`` (the caller reads the body whole, as a small one) for a body
holding :data:`PLACEHOLDER` (a string of one NUL, which no client needs), one whose first ``[[`` is
not closed, closed by ``}``, or leaves more than :data:`SKELETON_LIMIT` outside the table, and
one whose rows' brackets do not pair up: each malformed or not a table body that orjson refuses
or reads quickly, or (a table under another key, records) the small-body path handles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MiB = 1024 * 1024
# Bodies under this are parsed by orjson whole: for them it is both fastest and small.
THRESHOLD = 1 * MiB
# Bytes of rows parsed by orjson at a time (its objects and yyjson's document: ~20x this).
PIECE = 128 * 1024
# Bytes scanned at a time (the scan's temporaries: up to ~20x this, for a body all brackets).
BLOCK = 256 * 1024
# The largest remainder of the body (keys, column names, an index) parsed whole.
SKELETON_LIMIT = 1 * MiB
# Stands in for the table in the skeleton. JSON writes a string of one NUL only so (a raw NUL is
# not allowed in a string), and a body holding it is read whole: it is found unambiguously.
PLACEHOLDER = b'"\\u0000"'
PLACEHOLDER_TEXT = "\x00"

_OPEN, _CLOSE, _QUOTE, _COMMA = ord("["), ord("]"), ord('"'), ord(",")
_BRACE, _UNBRACE = ord("{"), ord("}")
_BACKSLASH = ord("\\")
_BRACKETS = (_CLOSE, _BRACE, _UNBRACE)  # with _OPEN and the quotes: the structural bytes
_DEPTH = np.zeros(256, dtype=np.int32)  # what each structural byte does to the depth
_DEPTH[[_OPEN, _BRACE]], _DEPTH[[_CLOSE, _UNBRACE]] = 1, -1
_BLANK = b" \t\r\n"
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def _quotes(block: NDArray[np.uint8], run: int) -> tuple[NDArray[np.bool_], int]:
    """The quotes of ``block`` that open or close a string (not escaped: after an even run of
    backslashes), given the run of backslashes that ended the block before; and the run that
    ends this one. Vectorised: no loop over the backslashes, whatever their number."""
    quotes = block == _QUOTE
    back = block == _BACKSLASH
    if not run and not back.any():
        return quotes, 0
    n = len(block)
    # The last byte at or before each position that is not a backslash (-1 - run: none yet,
    # the block before ended with ``run`` of them).
    last = np.maximum.accumulate(np.where(back, -1 - run, np.arange(n)))
    del back
    escaped = np.empty(n, dtype=np.bool_)
    escaped[0] = run & 1
    escaped[1:] = ((np.arange(1, n) - 1 - last[:-1]) & 1).astype(np.bool_)
    quotes &= ~escaped
    return quotes, int(n - 1 - last[-1])


@dataclass(frozen=True)
class Table:
    """Where a table's rows are in ``body``: row ``i`` is ``body[starts[i]:ends[i] + 1]``
    (``[`` to ``]``); the table itself spans ``body[start:end + 1]``. ``fault``: where the
    first array or object inside a row begins (row ``fault_row``), or -1; ``stray``: where the
    first object in place of a row begins, or -1."""

    body: bytes
    start: int
    end: int
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    rows: int  # the rows' bounds are kept for at most max_rows + 1 of them: past it, a 413
    fault: int = -1
    fault_row: int = -1
    stray: int = -1

    @property
    def flat_rows(self) -> int:
        """The rows before the first one holding an array or an object."""
        return self.fault_row if self.fault >= 0 else self.rows

    def values_per_row(self) -> NDArray[np.int64]:
        """How many values each of the :attr:`flat_rows` holds, counted from its commas outside
        strings (no parsing)."""
        n = self.flat_rows
        buf = np.frombuffer(self.body, dtype=np.uint8)
        bounds = np.empty(2 * n, dtype=np.int64)  # each row's '[' and ']', in order
        bounds[0::2], bounds[1::2] = self.starts[:n], self.ends[:n]
        before = np.empty(len(bounds), dtype=np.int64)  # commas (outside strings) before each
        carry, parity, run, k = 0, 0, 0, 0
        stop_at = int(self.ends[n - 1]) + 1 if n else self.start
        for offset in range(self.start, stop_at, BLOCK):
            block = buf[offset : min(offset + BLOCK, stop_at)]
            commas = block == _COMMA
            quotes, run = _quotes(block, run)
            n_quotes = int(np.count_nonzero(quotes))
            if n_quotes or parity:
                commas &= ((np.cumsum(quotes, dtype=np.uint8) + parity) & 1) == 0
                parity = (parity + n_quotes) & 1
            del quotes
            stop = int(np.searchsorted(bounds, offset + len(commas)))
            inner = bounds[k:stop] - offset
            if len(inner):
                # reduceat sums between consecutive indices (which must differ: bounds do)
                lead = inner[0] > 0
                at = np.concatenate(([0], inner)) if lead else inner
                sums = np.cumsum(np.add.reduceat(commas, at, dtype=np.int64))
                before[k:stop] = carry + (sums[:-1] if lead else np.concatenate(([0], sums[:-1])))
            carry += int(np.count_nonzero(commas))
            k = stop
        counts = before[1::2] - before[0::2] + 1
        for i in np.flatnonzero(counts == 1).tolist():  # one value, or none: ``[ ]``
            if not self.body[self.starts[i] + 1 : self.ends[i]].strip(_BLANK):
                counts[i] = 0
        return counts

    def values_before_fault(self) -> int:
        """Which value of its row the fault is (the commas outside strings before it)."""
        text = _ESCAPE.sub(b"", self.body[self.starts[self.fault_row] + 1 : self.fault])
        return sum(part.count(b",") for part in text.split(b'"')[0::2])

    def pieces(self) -> Iterator[tuple[int, int, bytes, int]]:
        """``(first_row, stop_row, text, origin)`` for the :attr:`flat_rows`: the rows
        ``first_row:stop_row`` as the JSON text of an array, whose byte ``k`` is byte
        ``origin + k`` of the body; what lies between rows, when it is more than a comma, is
        yielded too, as ``(row, row, text, origin)``."""
        body, starts, ends = self.body, self.starts, self.ends
        n, last = self.flat_rows, self.rows
        if not n:
            return
        head = body[self.start + 1 : starts[0]]
        if head.strip(_BLANK):
            yield 0, 0, b"[" + head + b"[]]", self.start
        first = 0
        while first < n:
            stop = int(np.searchsorted(starts[:n], starts[first] + PIECE, side="left"))
            stop = max(stop, first + 1)
            a, b = int(starts[first]), int(ends[stop - 1])
            yield first, stop, b"[" + body[a : b + 1] + b"]", a - 1
            gap = body[b + 1 : int(starts[stop]) if stop < last else self.end]
            if stop < last and gap.strip(_BLANK) != b",":
                yield stop, stop, b"[[]" + gap + b"[]]", b - 2
            elif stop == last and gap.strip(_BLANK):
                yield stop, stop, b"[[]" + gap + b"]", b - 2
            first = stop


def find_table(body: bytes, max_rows: int) -> tuple[bytes, Table] | None:
    """The first array of arrays in ``body`` and the skeleton (the body with
    :data:`PLACEHOLDER` for it); ``None`` when the body is not one the pieces can be read from
    (see the module's doc).

    One pass over the body in blocks of :data:`BLOCK` bytes, keeping only the rows' bounds (at
    most ``max_rows + 1`` of them: past that the rows are only counted, for the 413) and where
    the first array or object inside a row is, so the memory is bounded whatever the body
    holds; the time is linear in it."""
    if len(body) >= 2**31 - 1 or PLACEHOLDER in body:
        return None
    buf = np.frombuffer(body, dtype=np.uint8)
    parity = 0  # 1 inside a string at the start of the block
    run = 0  # the backslashes that ended the block before
    before_kind, before_pos = 0, -1  # the last structural byte seen, outside strings
    start = end = fault = fault_row = stray = -1
    depth = 1  # inside the table once it is found: 1 between rows, 2 in a row
    rows = 0  # rows whose '[' is seen
    kept = max_rows + 1
    starts: list[NDArray[np.int64]] = []
    ends: list[NDArray[np.int64]] = []
    for offset in range(0, len(buf), BLOCK):
        block = buf[offset : offset + BLOCK]
        hits, run = _quotes(block, run)
        for byte in (_OPEN, *_BRACKETS):
            hits |= block == byte
        where = np.flatnonzero(hits) + offset
        del hits
        kinds = buf[where]
        quotes = kinds == _QUOTE
        n_quotes = int(np.count_nonzero(quotes))
        if n_quotes or parity:
            # Inside a string when an odd number of (unescaped) quotes come before; the parity
            # survives uint8 overflow.
            inside = (np.cumsum(quotes, dtype=np.uint8) + parity) & 1
            keep = ~quotes & (inside == 0)
            where, kinds = where[keep], kinds[keep]
            parity = (parity + n_quotes) & 1
        if start < 0:
            opens = np.concatenate(([before_kind], kinds)) == _OPEN
            pair = np.flatnonzero(opens[:-1] & opens[1:])
            if not len(pair):
                if len(kinds):
                    before_kind, before_pos = int(kinds[-1]), int(where[-1])
                continue
            first = int(pair[0])  # the table's '[' is kinds[first - 1] (or the one before)
            start = before_pos if first == 0 else int(where[first - 1])
            where, kinds = where[first:], kinds[first:]
        after = depth + np.cumsum(_DEPTH[kinds])  # the depth after each structural byte
        closed = np.flatnonzero(after <= 0)
        if len(closed):  # the table's ']' (or a stray '}': malformed, read whole)
            at = int(closed[0])
            if kinds[at] != _CLOSE:
                return None
            end = int(where[at])
            where, kinds, after = where[:at], kinds[:at], after[:at]
        opened = where[(after == 2) & (kinds == _OPEN)]
        if stray < 0:
            objects = np.flatnonzero((after == 2) & (kinds == _BRACE))
            if len(objects):
                stray = int(where[objects[0]])
        if fault < 0:
            nested = np.flatnonzero(after == 3)
            if len(nested):
                fault = int(where[nested[0]])
                fault_row = rows + int(np.searchsorted(opened, fault)) - 1
        if rows < kept:
            starts.append(opened[: kept - rows])
            ends.append(where[(after == 1) & (kinds == _CLOSE)][: kept - rows])
        rows += len(opened)
        depth = int(after[-1]) if len(after) else depth
        if end >= 0:
            break
    if end < 0 or start + len(body) - end > SKELETON_LIMIT:
        return None
    found = np.concatenate(starts), np.concatenate(ends)
    if rows < kept and stray < 0:
        opened, closed = found
        if len(opened) != len(closed) or not (
            bool(np.all(opened < closed)) and bool(np.all(closed[:-1] < opened[1:]))
        ):
            return None  # a '[' closed by '}' or the like: malformed, orjson says where
    table = Table(body, start, end, found[0], found[1], rows, fault, fault_row, stray)
    return body[:start] + PLACEHOLDER + body[end + 1 :], table
