"""CSV with a header row (UTF-8; comma, tab or semicolon), parsed by polars."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.columns import (
    check_counts,
    check_feature_count,
    check_names,
    from_frame,
    numeric_dataset,
)
from core.datasets.labels import label_from_strings, numeric_label
from core.datasets.parsed import (
    CsvLocator,
    Deadline,
    ParsedDataset,
    exact_in_float32,
    excerpt,
    ragged,
    widened,
)
from core.datasets.values import MISSING_TOKENS
from core.errors import InvalidInput
from store.tables import DatasetFormat

# Bytes of lines the numeric path hands polars at a time. Each call costs about 20 us a column
# besides the parsing, so wide tables get larger blocks (about 1,600 bytes a column: the calls
# stay a few % of the time); one block's buffers stay a few times this.
_BLOCK_BYTES = 2 * 1024 * 1024
_MAX_BLOCK_BYTES = 4 * 1024 * 1024


# Cells of a block copied into the matrix at a time (2 MB as float64).
_SLICE_CELLS = 1 << 18


def _block_bytes(columns: int) -> int:
    return max(_BLOCK_BYTES, min(_MAX_BLOCK_BYTES, 1_600 * columns))


def _sniff_separator(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _read_header(path: Path) -> tuple[list[str], int, str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first_line = handle.readline(1 << 20)
            sep = _sniff_separator(first_line)
            handle.seek(0)
            reader = csv.reader(handle, delimiter=sep)
            header = next(reader, [])
            return header, reader.line_num, sep
    except UnicodeDecodeError as exc:
        raise _utf8_error(path) from exc
    except csv.Error as exc:
        raise InvalidInput(
            f"could not parse the CSV header: {excerpt(str(exc))}", {"line": 1}, code="invalid_csv"
        ) from exc


def _utf8_error(path: Path) -> InvalidInput:
    line = 0
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):  # noqa: B007  (line is used after)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                break
    return InvalidInput(
        f"the CSV is not valid UTF-8 (line {line}); save it as UTF-8",
        {"line": line},
        code="invalid_encoding",
    )


def _first_ragged_line(path: Path, sep: str, expected: int) -> InvalidInput:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=sep)
        try:
            for record in reader:
                if record and len(record) != expected:
                    return ragged(reader.line_num, len(record), expected)
        except csv.Error:
            pass  # a pathological field: fall back to the message without a line
    return InvalidInput("the CSV has rows of different lengths", {}, code="ragged_row")


def parse_csv(
    path: Path, *, label: str | None, settings: Settings, deadline: Deadline | None = None
) -> ParsedDataset:
    deadline = deadline or Deadline(settings.parse_budget_seconds)
    header, header_lines, sep = _read_header(path)
    if not header:
        raise InvalidInput("the CSV has no header row", {"line": 1}, code="empty_file")
    names = check_names(header, "CSV header")
    check_feature_count(len(names) - 1, settings)  # before polars reads a single row
    deadline.check()
    loc = CsvLocator(path, header_lines=header_lines, sep=sep, width=len(names))
    label_name = names[-1] if label is None else label
    if label_name in names:
        fast = _read_numeric(path, header_lines, sep, names, label_name, settings, deadline)
        if fast is not None:
            x, labels = fast
            features = [n for n in names if n != label_name]
            check_counts(x.shape[0], len(features), settings)
            target = (
                numeric_label(labels, label_name, loc)
                if isinstance(labels, np.ndarray)
                else label_from_strings(labels, label_name, loc, settings)
            )
            return numeric_dataset(DatasetFormat.csv, x, features, label_name, target)
    deadline.check()
    frame = _read_strings(path, sep, names, settings)
    frame = _drop_trailing_blank_rows(frame)
    deadline.check()
    loc = CsvLocator(path, header_lines=header_lines, sep=sep, width=len(names), frame=frame)
    return from_frame(
        frame, fmt=DatasetFormat.csv, label=label, loc=loc, settings=settings, deadline=deadline
    )


# ---------------------------------------------------------------------------------------------
# The common case: every feature a number. Read straight into the matrix in blocks of lines, so
# the peak is about the matrix plus one block, not the file's text plus a table plus the matrix.
# The matrix is float32 while every value so far is exactly a float32 (0/1 flags, small whole
# numbers, pixels), else float64: short cells like "0," would otherwise make the matrix 4x the
# file. Either way it holds the numbers exactly as written.


def _read_numeric(
    path: Path,
    header_lines: int,
    sep: str,
    names: list[str],
    label: str,
    settings: Settings,
    deadline: Deadline,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.float64] | pl.Series] | None:
    """Features as a float32 or float64 matrix and the label as numbers (when every one is a
    finite number) or as text; None when anything is unusual (a feature that is not a number or
    is infinite, a quote, a blank or ragged line, too many rows): the string path then reads the
    file again and names the problem precisely."""
    span = _data_span(path, header_lines)
    if span is None:
        return None
    start, end, lines = span
    if lines > settings.max_dataset_rows:
        return None
    deadline.check()
    # A plain dict: pl.Schema validates each entry, ~3 us a column.
    schema = {n: pl.String if n == label else pl.Float64 for n in names}
    x: NDArray[np.floating[Any]] = np.empty((lines, len(names) - 1), dtype=np.float32)
    # The label as numbers while every one so far is (8 bytes a row, not a string's 16 and up).
    numbers: NDArray[np.float64] | None = np.empty(lines, dtype=np.float64)
    texts: list[pl.Series] = []
    row = 0
    for block in _line_blocks(path, start, end, _block_bytes(len(names))):
        if block is None:
            return None
        try:
            frame = pl.read_csv(
                block,
                has_header=False,
                schema=schema,
                separator=sep,
                null_values=list(MISSING_TOKENS),  # "NA" and friends: NaN, still fast
                encoding="utf8",
                truncate_ragged_lines=False,
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError:
            return None
        raw = frame.drop_in_place(label)
        if numbers is not None:
            as_number = raw.str.strip_chars().cast(pl.Float64, strict=False)
            if as_number.null_count() == 0 and not as_number.is_infinite().any():
                if row + len(as_number) > lines:
                    return None
                numbers[row : row + len(as_number)] = as_number.to_numpy()
            elif row:
                return None  # numbers, then something else: the string path names it
            else:
                numbers = None  # a text label (class names), or one with gaps
        if numbers is None:
            texts.append(raw)
        del raw
        n = frame.height
        if row + n > lines:
            return None
        # A slice of columns at a time into the matrix: the only block-sized buffer is polars'
        # own. Fortran order is polars' cheap export; the copy into the C-ordered rows transposes.
        step = max(1, _SLICE_CELLS // max(n, 1))
        for j in range(0, frame.width, step):
            values = frame[:, j : j + step].to_numpy(order="fortran")
            # NaN is an empty cell (missing); infinity goes to the string path, which names it.
            if np.isinf(values).any():
                return None
            if x.dtype == np.float32 and not exact_in_float32(values):
                x = widened(x, row + n)
            x[row : row + n, j : j + step] = values
        del frame
        row += n
        deadline.check()
    if row != lines:
        return None
    if numbers is not None and lines:
        return x, numbers
    return x, pl.concat(texts) if texts else pl.Series(label, [], dtype=pl.String)


def _data_span(path: Path, header_lines: int) -> tuple[int, int, int] | None:
    """Byte offsets of the rows (after the header, before trailing blank lines) and their
    number of lines, in one buffered pass; None if a quote appears there (a quoted field may
    hold a newline, so lines would not be rows)."""
    with path.open("rb") as handle:
        for _ in range(header_lines):
            handle.readline()
        start = end = handle.tell()
        newlines = newlines_after = 0  # in all the rows; after the last byte that is not one
        while chunk := handle.read(_BLOCK_BYTES):
            if b'"' in chunk:
                return None
            newlines += chunk.count(b"\n")
            content = len(chunk) if chunk[-1] not in b"\r\n" else len(chunk.rstrip(b"\r\n"))
            if content:
                end = handle.tell() - len(chunk) + content
                newlines_after = chunk.count(b"\n", content)
            else:
                newlines_after += chunk.count(b"\n")
    if end == start:
        return None
    # Lines up to ``end``: the newlines before it, plus the last line, which has none.
    return start, end, newlines - newlines_after + 1


def _line_blocks(path: Path, start: int, end: int, size: int) -> Iterator[bytes | None]:
    """Whole lines of ``[start, end)``, about ``size`` bytes at a time; None for a line longer
    than a block (not a numeric table: the string path takes it)."""
    with path.open("rb") as handle:
        handle.seek(start)
        position = start
        while position < end:
            chunk = handle.read(min(size, end - position))
            if position + len(chunk) < end:
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    yield None
                    return
                chunk = chunk[:cut]
                handle.seek(position + cut)
            position += len(chunk)
            yield chunk


# ---------------------------------------------------------------------------------------------
# Everything else: every column as text, typed and checked in columns.from_frame.


def _read_strings(path: Path, sep: str, names: list[str], settings: Settings) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            path,
            separator=sep,
            has_header=True,
            infer_schema=False,  # every column as text; typing is decided in from_frame
            null_values=list(MISSING_TOKENS),
            n_rows=settings.max_dataset_rows + 1,
            encoding="utf8",
            raise_if_empty=True,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.NoDataError as exc:
        raise InvalidInput("the file is empty", {}, code="empty_file") from exc
    except pl.exceptions.ComputeError as exc:
        message = str(exc)
        if "more fields" in message:
            raise _first_ragged_line(path, sep, len(names)) from exc
        if "utf-8" in message.lower():
            raise _utf8_error(path) from exc
        raise _unparsable(exc) from exc
    except pl.exceptions.PolarsError as exc:
        raise _unparsable(exc) from exc
    if frame.width != len(names):
        raise InvalidInput(
            f"the CSV header has {len(names)} columns but the parser found {frame.width}",
            {"line": 1},
            code="invalid_csv",
        )
    frame.columns = names
    return frame


def _unparsable(exc: Exception) -> InvalidInput:
    # polars' message may quote a field of any length.
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InvalidInput(f"could not parse the CSV: {excerpt(first)}", {}, code="invalid_csv")


def _drop_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    # Blank lines at the end of a file are formatting, not rows. (Blank lines in the middle
    # stay and are reported.)
    if frame.height == 0 or not all(v is None for v in frame.row(frame.height - 1)):
        return frame
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    kept = (~blank).arg_true()
    return frame.head(int(kept[-1]) + 1 if len(kept) else 0)
