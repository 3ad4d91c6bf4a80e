"""CSV with a header row (UTF-8; comma, tab or semicolon), parsed by polars."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from core.config import Settings
from core.datasets.columns import check_feature_count, check_names, from_frame
from core.datasets.parsed import CsvLocator, ParsedDataset, ragged
from core.errors import InvalidInput
from store.tables import DatasetFormat


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
            f"could not parse the CSV header: {exc}", {"line": 1}, code="invalid_csv"
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


def parse_csv(path: Path, *, label: str | None, settings: Settings) -> ParsedDataset:
    header, header_lines, sep = _read_header(path)
    if not header:
        raise InvalidInput("the CSV has no header row", {"line": 1}, code="empty_file")
    names = check_names(header, "CSV header")
    check_feature_count(len(names) - 1, settings)  # before polars reads a single row
    try:
        frame = pl.read_csv(
            path,
            separator=sep,
            has_header=True,
            infer_schema=False,  # every column as text; typing is decided below, column by column
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
        raise InvalidInput(
            f"could not parse the CSV: {message.splitlines()[0]}", {}, code="invalid_csv"
        ) from exc
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(
            f"could not parse the CSV: {str(exc).splitlines()[0]}", {}, code="invalid_csv"
        ) from exc
    if frame.width != len(names):
        raise InvalidInput(
            f"the CSV header has {len(names)} columns but the parser found {frame.width}",
            {"line": 1},
            code="invalid_csv",
        )
    frame.columns = names
    frame = _drop_trailing_blank_rows(frame)
    loc = CsvLocator(path, frame, header_lines, sep)
    return from_frame(frame, fmt=DatasetFormat.csv, label=label, loc=loc, settings=settings)


def _drop_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    # Blank lines at the end of a file are formatting, not rows. (Blank lines in the middle
    # stay and are reported.)
    if frame.height == 0:
        return frame
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    if not blank[-1]:
        return frame
    kept = (~blank).arg_true()
    return frame.head(int(kept[-1]) + 1 if len(kept) else 0)
