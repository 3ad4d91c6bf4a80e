"""Datasets: turn uploaded bytes into a validated, stored dataset.

Formats (detected from content; the file name is only a hint):
- CSV with a header row (UTF-8; comma, tab or semicolon), parsed by polars;
- NPZ with arrays ``X`` (2-D numeric), ``y`` (1-D) and optionally ``feature_names``;
- JSON ``{"X": [[...]], "y": [...]}`` (optionally ``"feature_names"``) or
  ``{"records": [{...}], "label": "col"}``.

In-memory representation (``ParsedDataset``): numeric features as one float64 matrix, categorical
features as int32 codes into a sorted per-column vocabulary (strings are never stored as wide
fixed-width arrays or Python objects), and the label as its values (float64 for regression,
int64 or str for classification). Every bad input is a typed error naming column, line
(1-based physical line of the file, header = line 1) or record, and the offending value.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import polars as pl
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from core import npz
from core.config import Settings
from core.errors import (
    Conflict,
    DescentError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedFormat,
)
from core.pagination import Page, check_limit, decode_cursor, encode_cursor
from store import datasets as dataset_store
from store import runs as run_store
from store.tables import Dataset, DatasetFormat, Task

FeatureType = Literal["numeric", "categorical"]

# Integer-valued labels with at most this many distinct values (and fewer than half the rows)
# are classes; otherwise the label is a regression target.
MAX_INTEGER_CLASSES = 100
# Longest categorical value or string label; bounds fixed-width string arrays.
MAX_CATEGORY_CHARS = 256
MAX_NAME_CHARS = 200
MIN_ROWS = 2
_SNIFF_BYTES = 64 * 1024
_NPZ_FORMAT_VERSION = 1
# Sanity bound when decoding our own stored blobs (uploads have their own, smaller caps).
_STORED_BLOB_MAX_BYTES = 16 * 1024**3


@dataclass(frozen=True, eq=False)
class ParsedDataset:
    """A validated dataset.

    ``X_numeric`` holds the numeric features (float64, ``n_rows x n_numeric``) and
    ``X_categorical`` the categorical ones (int32 codes, ``n_rows x n_categorical``), each in the
    order they appear in ``feature_names``; ``categories[j]`` is the sorted vocabulary of the j-th
    categorical feature. ``y`` is float64 for regression; for classification it holds the label
    values (int64 or str), and ``classes`` their sorted distinct values.
    """

    format: DatasetFormat
    feature_names: list[str]
    feature_types: list[FeatureType]
    X_numeric: NDArray[np.float64]
    X_categorical: NDArray[np.int32]
    categories: list[list[str]]
    y: NDArray[Any]
    label: str
    task: Task
    classes: list[int] | list[str] | None

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def numeric_names(self) -> list[str]:
        return [
            n for n, t in zip(self.feature_names, self.feature_types, strict=True) if t == "numeric"
        ]

    @property
    def categorical_names(self) -> list[str]:
        return [
            n
            for n, t in zip(self.feature_names, self.feature_types, strict=True)
            if t == "categorical"
        ]

    def y_codes(self) -> NDArray[np.int64]:
        """Class indices into ``classes`` (classification only)."""
        if self.classes is None:
            raise ValueError("y_codes() is only defined for classification datasets")
        return np.searchsorted(np.asarray(self.classes), self.y).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Error locations


class _Locator:
    """Names a row of the input in errors: subclasses say 'line 7', 'record 3', 'row 12'."""

    key = "row"

    def position(self, row: int) -> int:
        return row

    def where(self, row: int) -> dict[str, int]:
        return {self.key: self.position(row)}

    def describe(self, row: int) -> str:
        return f"at {self.key} {self.position(row)}"

    def missing_value(self, row: int, column: str) -> InvalidInput:
        return InvalidInput(
            f"missing value in column {column!r} {self.describe(row)}",
            {"column": column, **self.where(row)},
            code="missing_value",
        )


class _RecordLocator(_Locator):
    key = "record"


class _CsvLocator(_Locator):
    """Physical 1-based file lines, correct across quoted fields that contain newlines."""

    key = "line"

    def __init__(self, path: Path, frame: pl.DataFrame, header_lines: int, sep: str) -> None:
        self.path = path
        self.frame = frame
        self.header_lines = header_lines
        self.sep = sep

    def position(self, row: int) -> int:
        before = self.frame.head(row)
        embedded = 0
        if row > 0:
            # Only on the error path: count newlines inside quoted fields of earlier rows.
            embedded = int(
                before.select(
                    pl.sum_horizontal(
                        pl.col(c).str.count_matches("\n").fill_null(0) for c in before.columns
                    )
                )
                .to_series()
                .sum()
            )
        return self.header_lines + 1 + row + embedded

    def missing_value(self, row: int, column: str) -> InvalidInput:
        # polars pads short rows with nulls; read the raw record to tell a ragged row from an
        # empty field.
        line = self.position(row)
        fields = _csv_record_at(self.path, line, self.sep)
        expected = self.frame.width
        if fields is not None and len(fields) != expected:
            return _ragged(line, len(fields), expected)
        return InvalidInput(
            f"missing value in column {column!r} at line {line}",
            {"column": column, "line": line},
            code="missing_value",
        )


def _ragged(line: int, found: int, expected: int) -> InvalidInput:
    what = "is empty" if found == 0 else f"has {found} fields"
    return InvalidInput(
        f"line {line} {what}; expected {expected} fields like the header",
        {"line": line, "fields": found, "expected": expected},
        code="ragged_row",
    )


def _csv_record_at(path: Path, line: int, sep: str) -> list[str] | None:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(itertools.islice(handle, line - 1, None), delimiter=sep)
        try:
            return next(reader)
        except (StopIteration, csv.Error):
            return None


# ---------------------------------------------------------------------------------------------
# Columns -> features and label


@dataclass
class _Features:
    names: list[str] = field(default_factory=list)
    types: list[FeatureType] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    categorical: list[tuple[str, list[str], NDArray[np.int32]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Label:
    y: NDArray[Any]
    task: Task
    classes: list[int] | list[str] | None


def _is_missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars().str.len_bytes() == 0)


def _check_missing(frame: pl.DataFrame, loc: _Locator) -> None:
    counts = frame.select(_is_missing(c).sum() for c in frame.columns).row(0)
    if not any(counts):
        return
    flags = frame.select(_is_missing(c) for c in frame.columns)
    row = int(flags.select(pl.any_horizontal(pl.all())).to_series().arg_true()[0])
    column = next(c for c in frame.columns if flags[c][row])
    raise loc.missing_value(row, column)


def _numeric_kind(raw: pl.Series, floats: pl.Series, name: str, loc: _Locator) -> FeatureType:
    """numeric if every value parses; a mostly-numeric column with a stray value is an error;
    a column of mostly non-numbers is categorical."""
    bad = floats.null_count()
    if bad == 0:
        _check_finite(raw, floats, name, loc)
        return "numeric"
    if 2 * bad < len(floats):
        row = int(floats.is_null().arg_true()[0])
        value = raw[row]
        raise InvalidInput(
            f"non-numeric value {value!r} in numeric column {name!r} {loc.describe(row)}",
            {"column": name, **loc.where(row), "value": value, "expected": "number"},
            code="non_numeric_value",
        )
    return "categorical"


def _check_finite(raw: pl.Series | None, floats: pl.Series, name: str, loc: _Locator) -> None:
    finite = floats.is_finite()
    if finite.all():
        return
    row = int((~finite).arg_true()[0])
    value: Any = raw[row] if raw is not None else float(floats[row])
    raise InvalidInput(
        f"non-finite value {value!r} in column {name!r} {loc.describe(row)}; "
        "NaN and infinity are not accepted (impute or drop missing values first)",
        {"column": name, **loc.where(row), "value": value if raw is not None else str(value)},
        code="non_finite_value",
    )


def _vocabulary(
    values: pl.Series, name: str, settings: Settings, what: str
) -> tuple[list[str], NDArray[np.int32]]:
    distinct = values.unique()
    if len(distinct) > settings.max_categories:
        raise InvalidInput(
            f"{what} {name!r} has {len(distinct)} distinct values; "
            f"at most {settings.max_categories} are supported",
            {"column": name, "distinct": len(distinct), "limit": settings.max_categories},
            code="too_many_categories",
        )
    longest = values.str.len_chars().max()
    if isinstance(longest, int) and longest > MAX_CATEGORY_CHARS:
        raise InvalidInput(
            f"{what} {name!r} has a value of {longest} characters; "
            f"at most {MAX_CATEGORY_CHARS} are supported",
            {"column": name, "limit": MAX_CATEGORY_CHARS},
            code="value_too_long",
        )
    vocabulary = sorted(str(v) for v in distinct.to_list())
    codes = values.cast(pl.Enum(vocabulary)).to_physical().to_numpy().astype(np.int32)
    return vocabulary, codes


def _numeric_label(y: NDArray[np.float64], name: str, loc: _Locator) -> _Label:
    finite = np.isfinite(y)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidInput(
            f"non-finite value {y[row]!r} in label {name!r} {loc.describe(row)}",
            {"column": name, **loc.where(row), "value": str(y[row])},
            code="non_finite_value",
        )
    distinct = np.unique(y)
    integral = bool(np.all(y == np.floor(y))) and bool(np.all(np.abs(y) < 2**53))
    if integral and len(distinct) <= MAX_INTEGER_CLASSES and len(distinct) < len(y) / 2:
        classes = [int(v) for v in distinct]
        _require_two_classes(classes, name)
        return _Label(y.astype(np.int64), Task.classification, classes)
    if len(distinct) < 2:
        raise InvalidInput(
            f"label {name!r} has a single value ({distinct[0]!r}); nothing to learn",
            {"column": name},
            code="single_class",
        )
    return _Label(y.astype(np.float64, copy=False), Task.regression, None)


def _require_two_classes(classes: list[int] | list[str], name: str) -> None:
    if len(classes) < 2:
        raise InvalidInput(
            f"label {name!r} has only one class ({classes[0]!r}); "
            "classification needs at least 2 classes",
            {"column": name, "classes": classes},
            code="single_class",
        )


def _label_from_strings(raw: pl.Series, name: str, loc: _Locator, settings: Settings) -> _Label:
    values = raw.str.strip_chars()
    missing = values.is_null() | (values.str.len_bytes() == 0)
    if missing.any():
        raise loc.missing_value(int(missing.arg_true()[0]), name)
    floats = values.cast(pl.Float64, strict=False)
    if _numeric_kind(raw, floats, name, loc) == "numeric":
        return _numeric_label(floats.to_numpy(), name, loc)
    vocabulary, codes = _vocabulary(values, name, settings, "label")
    _require_two_classes(vocabulary, name)
    return _Label(np.asarray(vocabulary, dtype=np.str_)[codes], Task.classification, vocabulary)


def _as_float(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def _from_frame(
    frame: pl.DataFrame,
    *,
    fmt: DatasetFormat,
    label: str | None,
    loc: _Locator,
    settings: Settings,
) -> ParsedDataset:
    """Shared by CSV and JSON records: a frame of string columns -> ParsedDataset.

    Memory: besides the frame, only the final float64 matrix is materialised; the per-column
    checks are aggregates, and a column is re-parsed only to locate an error.
    """
    columns = frame.columns
    label = _resolve_label(label, columns)
    _check_counts(frame.height, len(columns) - 1, settings)
    _check_missing(frame, loc)

    feature_columns = [c for c in columns if c != label]
    stats = (
        frame.lazy()
        .select(
            *(_as_float(c).null_count().alias(f"bad{i}") for i, c in enumerate(feature_columns)),
            *(
                _as_float(c).is_finite().fill_null(True).all().alias(f"fin{i}")
                for i, c in enumerate(feature_columns)
            ),
        )
        .collect()
        .row(0, named=True)
    )
    features = _Features()
    for i, name in enumerate(feature_columns):
        bad, finite = int(stats[f"bad{i}"]), bool(stats[f"fin{i}"])
        if bad or not finite:
            # Error path, or a categorical column: parse this column again to decide/locate.
            floats = frame.select(_as_float(name)).to_series()
            kind = _numeric_kind(frame[name], floats, name, loc)
        else:
            kind = "numeric"
        features.names.append(name)
        features.types.append(kind)
        if kind == "numeric":
            features.numeric.append(name)
        else:
            vocabulary, codes = _vocabulary(
                frame[name].str.strip_chars(), name, settings, "categorical column"
            )
            features.categorical.append((name, vocabulary, codes))
    target = _label_from_strings(frame[label], label, loc, settings)

    n = frame.height
    x_num = np.empty((n, len(features.numeric)), dtype=np.float64)
    for j, name in enumerate(features.numeric):
        x_num[:, j] = frame.select(_as_float(name)).to_series().to_numpy()
    x_cat = np.empty((n, len(features.categorical)), dtype=np.int32)
    for j, (_, _, codes) in enumerate(features.categorical):
        x_cat[:, j] = codes
    return ParsedDataset(
        format=fmt,
        feature_names=features.names,
        feature_types=features.types,
        X_numeric=x_num,
        X_categorical=x_cat,
        categories=[v for _, v, _ in features.categorical],
        y=target.y,
        label=label,
        task=target.task,
        classes=target.classes,
    )


def _resolve_label(label: str | None, columns: list[str]) -> str:
    if label is None:
        return columns[-1]
    if label not in columns:
        raise InvalidInput(
            f"label column {label!r} not found; available: {columns}",
            {"field": "label", "label": label, "available": columns},
            code="label_not_found",
        )
    return label


def _check_counts(n_rows: int, n_features: int, settings: Settings) -> None:
    if n_rows == 0:
        raise InvalidInput("the dataset has no data rows", {"rows": 0}, code="no_rows")
    if n_rows < MIN_ROWS:
        raise InvalidInput(
            f"the dataset has {n_rows} row; need at least {MIN_ROWS}",
            {"rows": n_rows, "minimum": MIN_ROWS},
            code="too_few_rows",
        )
    if n_rows > settings.max_dataset_rows:
        raise PayloadTooLarge(
            f"the dataset has more than {settings.max_dataset_rows} rows",
            {"limit_rows": settings.max_dataset_rows},
            code="too_many_rows",
        )
    _check_feature_count(n_features, settings)


def _check_feature_count(n_features: int, settings: Settings) -> None:
    if n_features < 1:
        raise InvalidInput(
            "need at least one feature column besides the label",
            {"features": n_features},
            code="no_features",
        )
    if n_features > settings.max_features:
        raise InvalidInput(
            f"the dataset has {n_features} features; at most {settings.max_features} are supported",
            {"features": n_features, "limit": settings.max_features},
            code="too_many_features",
        )


def _check_names(names: list[str], where: str) -> list[str]:
    cleaned = [n.strip() for n in names]
    for i, name in enumerate(cleaned):
        if not name:
            raise InvalidInput(
                f"{where}: column {i + 1} has no name",
                {"position": i + 1},
                code="empty_column_name",
            )
        if len(name) > MAX_NAME_CHARS:
            raise InvalidInput(
                f"{where}: column {i + 1} has a name longer than {MAX_NAME_CHARS} characters",
                {"position": i + 1},
                code="column_name_too_long",
            )
    seen: set[str] = set()
    for name in cleaned:
        if name in seen:
            raise InvalidInput(
                f"{where}: duplicate column name {name!r}",
                {"column": name},
                code="duplicate_column",
            )
        seen.add(name)
    return cleaned


# ---------------------------------------------------------------------------------------------
# Format detection


def detect_format(head: bytes, filename: str | None, content_type: str | None) -> DatasetFormat:
    """Decide the format from the first bytes; the name and content type only break ties."""
    name = (filename or "").lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return DatasetFormat.npz
    if name.endswith(".npz") or ctype in {"application/zip", "application/x-npz"}:
        raise InvalidInput(
            "the file is named or typed as NPZ but is not a zip archive",
            {"field": "file"},
            code="invalid_npz",
        )
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            raise UnsupportedFormat(
                f"text in {encoding} is not supported; send UTF-8",
                {"encoding": encoding},
                code="unsupported_encoding",
            )
    if head.startswith(b"\x93NUMPY"):
        raise UnsupportedFormat(
            "a single .npy array is not a dataset; send an .npz with arrays X and y",
            {"detected": "npy"},
        )
    text = head.removeprefix(codecs.BOM_UTF8)
    # NUL bytes mean binary. Text in another 8-bit encoding (latin-1...) goes on to the CSV
    # parser, which names the first line that is not UTF-8.
    if b"\x00" in text:
        raise UnsupportedFormat(
            "unrecognised file format; send CSV (UTF-8, with a header), NPZ or JSON",
            {"accepted": ["csv", "npz", "json"]},
        )
    if text.lstrip()[:1] in (b"{", b"[") or name.endswith(".json") or ctype == "application/json":
        return DatasetFormat.json
    return DatasetFormat.csv


# ---------------------------------------------------------------------------------------------
# CSV


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
                    return _ragged(reader.line_num, len(record), expected)
        except csv.Error:
            pass  # a pathological field: fall back to the message without a line
    return InvalidInput("the CSV has rows of different lengths", {}, code="ragged_row")


def _parse_csv(path: Path, *, label: str | None, settings: Settings) -> ParsedDataset:
    header, header_lines, sep = _read_header(path)
    if not header:
        raise InvalidInput("the CSV has no header row", {"line": 1}, code="empty_file")
    names = _check_names(header, "CSV header")
    _check_feature_count(len(names) - 1, settings)  # before polars reads a single row
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
    loc = _CsvLocator(path, frame, header_lines, sep)
    return _from_frame(frame, fmt=DatasetFormat.csv, label=label, loc=loc, settings=settings)


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


# ---------------------------------------------------------------------------------------------
# JSON


def _stringify(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise InvalidInput(
        f"{where}: nested values are not supported",
        {"value": str(value)[:100]},
        code="invalid_value",
    )


def _parse_json(path: Path, *, label: str | None, settings: Settings) -> ParsedDataset:
    size = path.stat().st_size
    if size > settings.max_json_upload_bytes:
        raise PayloadTooLarge(
            f"JSON uploads are limited to {settings.max_json_upload_bytes} bytes; "
            "send large datasets as CSV or NPZ",
            {"limit_bytes": settings.max_json_upload_bytes, "size_bytes": size},
            code="upload_too_large",
        )
    try:
        data = orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"invalid JSON: {exc}", {}, code="invalid_json") from exc
    if isinstance(data, dict) and "records" in data:
        return _parse_records(data, label=label, settings=settings)
    if isinstance(data, dict) and "X" in data and "y" in data:
        return _parse_xy(data, label=label, settings=settings)
    raise InvalidInput(
        'expected a JSON object {"X": [[...]], "y": [...]} or '
        '{"records": [{...}], "label": "column"}',
        {},
        code="invalid_json_shape",
    )


def _unknown_keys(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(
            f"unknown top-level key(s) {extra}; allowed: {sorted(allowed)}",
            {"unknown": extra},
            code="invalid_json_shape",
        )


def _parse_records(data: dict[str, Any], *, label: str | None, settings: Settings) -> ParsedDataset:
    _unknown_keys(data, {"records", "label"})
    records = data["records"]
    if not isinstance(records, list) or not records:
        raise InvalidInput('"records" must be a non-empty list of objects', {}, code="no_rows")
    if not isinstance(records[0], dict):
        raise InvalidInput("record 0 is not an object", {"record": 0}, code="invalid_record")
    names = _check_names([str(k) for k in records[0]], "records")
    keys = list(records[0])
    key_set = set(keys)
    columns: dict[str, list[str | None]] = {n: [] for n in names}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"record {i} is not an object", {"record": i}, code="invalid_record")
        if record.keys() != key_set:
            missing = sorted(key_set - record.keys())
            extra = sorted(set(record) - key_set)
            raise InvalidInput(
                f"record {i} has different columns from record 0 "
                f"(missing: {missing}, unexpected: {extra})",
                {"record": i, "missing": missing, "unexpected": extra},
                code="ragged_row",
            )
        for key, name in zip(keys, names, strict=True):
            columns[name].append(_stringify(record[key], f"record {i}, column {name!r}"))
    body_label = data.get("label")
    if body_label is not None and not isinstance(body_label, str):
        raise InvalidInput('"label" must be a string', {"field": "label"})
    frame = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
    return _from_frame(
        frame,
        fmt=DatasetFormat.json,
        label=label or body_label,
        loc=_RecordLocator(),
        settings=settings,
    )


def _parse_xy(data: dict[str, Any], *, label: str | None, settings: Settings) -> ParsedDataset:
    _unknown_keys(data, {"X", "y", "feature_names"})
    X, y = data["X"], data["y"]
    if not isinstance(X, list) or not isinstance(y, list):
        raise InvalidInput('"X" and "y" must be lists', {}, code="invalid_json_shape")
    x = _json_matrix(X)
    if x.shape[0] != len(y):
        raise _shape_mismatch(x.shape[0], len(y))
    names = _feature_names(data.get("feature_names"), x.shape[1])
    label = label or "y"
    _check_counts(x.shape[0], x.shape[1], settings)
    values = pl.Series("y", [_stringify(v, f"y[{i}]") for i, v in enumerate(y)], dtype=pl.String)
    target = _label_from_strings(values, label, _Locator(), settings)
    return _numeric_dataset(DatasetFormat.json, x, names, label, target)


def _json_matrix(X: list[Any]) -> NDArray[np.float64]:
    if not X:
        raise InvalidInput("the dataset has no data rows", {"rows": 0}, code="no_rows")
    try:
        arr = np.array(X)
    except (ValueError, TypeError):
        arr = np.empty(0, dtype=object)
    if arr.ndim == 2 and arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    # Slow path, only for bad input: find the first offending row or value.
    width = len(X[0]) if isinstance(X[0], list) else -1
    for i, row in enumerate(X):
        if not isinstance(row, list):
            raise InvalidInput(f"X[{i}] is not a list", {"row": i}, code="invalid_value")
        if len(row) != width:
            raise InvalidInput(
                f"X[{i}] has {len(row)} values; X[0] has {width}",
                {"row": i, "values": len(row), "expected": width},
                code="ragged_row",
            )
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"X[{i}][{j}] = {value!r} is not a number",
                    {"row": i, "column": j, "value": str(value)[:100], "expected": "number"},
                    code="non_numeric_value",
                )
    try:  # integers too large for int64 but still numbers
        return np.array(X, dtype=np.float64)
    except OverflowError as exc:
        raise InvalidInput(
            f"X has a number out of range: {exc}", {}, code="non_finite_value"
        ) from exc


def _feature_names(given: Any, width: int) -> list[str]:
    if given is None:
        return [f"x{i}" for i in range(width)]
    if not isinstance(given, list) or not all(isinstance(n, str) for n in given):
        raise InvalidInput("feature_names must be a list of strings", {"field": "feature_names"})
    if len(given) != width:
        raise InvalidInput(
            f"feature_names has {len(given)} names; X has {width} columns",
            {"field": "feature_names", "names": len(given), "columns": width},
            code="shape_mismatch",
        )
    return _check_names(given, "feature_names")


def _shape_mismatch(x_rows: int, y_rows: int) -> InvalidInput:
    return InvalidInput(
        f"X has {x_rows} rows, y has {y_rows}",
        {"X_rows": x_rows, "y_rows": y_rows},
        code="shape_mismatch",
    )


def _numeric_dataset(
    fmt: DatasetFormat, x: NDArray[np.float64], names: list[str], label: str, target: _Label
) -> ParsedDataset:
    if label in names:
        raise InvalidInput(
            f"label name {label!r} is also a feature name",
            {"field": "label", "label": label},
            code="duplicate_column",
        )
    return ParsedDataset(
        format=fmt,
        feature_names=names,
        feature_types=["numeric"] * len(names),
        X_numeric=np.ascontiguousarray(x, dtype=np.float64),
        X_categorical=np.empty((x.shape[0], 0), dtype=np.int32),
        categories=[],
        y=target.y,
        label=label,
        task=target.task,
        classes=target.classes,
    )


# ---------------------------------------------------------------------------------------------
# NPZ


def _parse_npz(path: Path, *, label: str | None, settings: Settings) -> ParsedDataset:
    headers = npz.inspect_npz(path, max_bytes=settings.max_decompressed_bytes)
    if "X" not in headers or "y" not in headers:
        raise InvalidInput(
            f"the NPZ must contain arrays 'X' and 'y'; found {sorted(headers)}",
            {"found": sorted(headers)},
            code="invalid_npz",
        )
    hx, hy = headers["X"], headers["y"]
    # Everything decidable from the headers is checked before any array is read.
    if len(hx.shape) != 2:
        raise InvalidInput(
            f"X must be 2-D (rows x features); got shape {hx.shape}",
            {"array": "X", "shape": list(hx.shape)},
            code="invalid_shape",
        )
    if hx.dtype.kind not in "biuf":
        raise InvalidInput(
            f"X must be numeric; got dtype {hx.dtype}",
            {"array": "X", "dtype": str(hx.dtype)},
            code="invalid_dtype",
        )
    if not (len(hy.shape) == 1 or (len(hy.shape) == 2 and hy.shape[1] == 1)):
        raise InvalidInput(
            f"y must be 1-D; got shape {hy.shape}",
            {"array": "y", "shape": list(hy.shape)},
            code="invalid_shape",
        )
    if hy.dtype.kind not in "biufU":
        raise InvalidInput(
            f"y must hold numbers, booleans or strings; got dtype {hy.dtype}",
            {"array": "y", "dtype": str(hy.dtype)},
            code="invalid_dtype",
        )
    if hx.shape[0] != hy.shape[0]:
        raise _shape_mismatch(hx.shape[0], hy.shape[0])
    _check_counts(hx.shape[0], hx.shape[1], settings)
    wanted = ["X", "y"] + (["feature_names"] if "feature_names" in headers else [])
    arrays = npz.load_arrays(path, wanted, max_bytes=settings.max_decompressed_bytes)

    x = arrays["X"].astype(np.float64, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise InvalidInput(
            f"non-finite value {x[row, col]!r} in X at row {row}, column {col}",
            {"array": "X", "row": row, "column": col, "value": str(x[row, col])},
            code="non_finite_value",
        )
    names_given: Any = None
    if "feature_names" in arrays:
        fn = arrays["feature_names"]
        if fn.ndim != 1 or fn.dtype.kind != "U":
            raise InvalidInput(
                "feature_names must be a 1-D string array",
                {"array": "feature_names"},
                code="invalid_dtype",
            )
        names_given = [str(n) for n in fn]
    names = _feature_names(names_given, x.shape[1])
    label = label or "y"

    y = arrays["y"].reshape(-1)
    loc = _Locator()
    if y.dtype.kind == "U":
        target = _label_from_strings(pl.Series("y", y, dtype=pl.String), label, loc, settings)
    elif y.dtype.kind == "b":
        strings = np.where(y, "true", "false")
        target = _label_from_strings(pl.Series("y", strings, dtype=pl.String), label, loc, settings)
    else:
        target = _numeric_label(y.astype(np.float64), label, loc)
    return _numeric_dataset(DatasetFormat.npz, x, names, label, target)


# ---------------------------------------------------------------------------------------------
# Entry point for bytes -> ParsedDataset, and the canonical stored encoding


def parse_upload(
    path: Path,
    *,
    filename: str | None,
    content_type: str | None,
    label: str | None,
    settings: Settings,
) -> ParsedDataset:
    """Parse and validate an uploaded file (already on disk, within the upload size cap)."""
    if label is not None:
        label = label.strip() or None
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise InvalidInput("the file is empty", {}, code="empty_file")
    fmt = detect_format(head, filename, content_type)
    if fmt is DatasetFormat.npz:
        return _parse_npz(path, label=label, settings=settings)
    if fmt is DatasetFormat.json:
        return _parse_json(path, label=label, settings=settings)
    return _parse_csv(path, label=label, settings=settings)


def encode_npz(parsed: ParsedDataset) -> bytes:
    """The stored form: compressed NPZ, no object arrays, metadata as JSON bytes."""
    meta = {
        "version": _NPZ_FORMAT_VERSION,
        "format": parsed.format.value,
        "feature_names": parsed.feature_names,
        "feature_types": parsed.feature_types,
        "categories": parsed.categories,
        "label": parsed.label,
        "task": parsed.task.value,
        "classes": parsed.classes,
    }
    return npz.encode_arrays(
        {
            "X_numeric": parsed.X_numeric,
            "X_categorical": parsed.X_categorical,
            "y": parsed.y,
            "meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8),
        }
    )


def decode_npz(blob: bytes, *, max_bytes: int = _STORED_BLOB_MAX_BYTES) -> ParsedDataset:
    arrays = npz.load_arrays(blob, ["X_numeric", "X_categorical", "y", "meta"], max_bytes=max_bytes)
    meta = orjson.loads(arrays["meta"].tobytes())
    if meta.get("version") != _NPZ_FORMAT_VERSION:
        raise ValueError(f"unknown stored dataset version {meta.get('version')!r}")
    return ParsedDataset(
        format=DatasetFormat(meta["format"]),
        feature_names=list(meta["feature_names"]),
        feature_types=list(meta["feature_types"]),
        X_numeric=arrays["X_numeric"],
        X_categorical=arrays["X_categorical"],
        categories=[list(c) for c in meta["categories"]],
        y=arrays["y"],
        label=meta["label"],
        task=Task(meta["task"]),
        classes=meta["classes"],
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Service functions (own the transactions)


def _not_found() -> NotFound:
    # Identical for a missing id and another tenant's id: no existence oracle.
    return NotFound("dataset not found", code="dataset_not_found")


def _clean_name(name: str | None, filename: str | None) -> str:
    chosen = (name or "").strip() or Path(filename or "").name.strip() or "dataset"
    if len(chosen) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"name is longer than {MAX_NAME_CHARS} characters",
            {"field": "name", "limit": MAX_NAME_CHARS},
        )
    return chosen


def create_dataset(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    upload_path: Path,
    filename: str | None,
    name: str | None,
    label: str | None,
    settings: Settings,
    content_type: str | None = None,
) -> Dataset:
    """Parse, validate and store an upload. Parsing happens before the session is used, so no
    database transaction (or SQLite write lock) is held while a large file is read."""
    display_name = _clean_name(name, filename)
    if label is not None and len(label) > MAX_NAME_CHARS:
        raise InvalidInput("label is too long", {"field": "label", "limit": MAX_NAME_CHARS})
    parsed = parse_upload(
        upload_path,
        filename=filename,
        content_type=content_type,
        label=label,
        settings=settings,
    )
    blob = encode_npz(parsed)
    row = Dataset(
        tenant_id=tenant_id,
        name=display_name,
        format=parsed.format,
        n_rows=parsed.n_rows,
        n_features=parsed.n_features,
        feature_names=parsed.feature_names,
        feature_types=list(parsed.feature_types),
        label=parsed.label,
        task=parsed.task,
        classes=parsed.classes,
        sha256=sha256_file(upload_path),
        size_bytes=upload_path.stat().st_size,
        blob=blob,
        blob_sha256=hashlib.sha256(blob).hexdigest(),
    )
    dataset_store.insert_dataset(session, row)
    session.commit()
    return row


def get_dataset(session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    row = dataset_store.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    if row is None:
        raise _not_found()
    return row


def list_datasets(
    session: Session, *, tenant_id: uuid.UUID, limit: int, cursor: str | None = None
) -> Page[Dataset]:
    check_limit(limit)
    after = decode_cursor(cursor) if cursor else None
    rows = dataset_store.list_datasets(session, tenant_id=tenant_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page(items=rows, next_cursor=next_cursor)


def delete_dataset(session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    row = dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, for_update=True
    )
    if row is None:
        raise _not_found()
    active = run_store.active_run_ids_for_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id
    )
    if active:
        session.rollback()
        raise Conflict(
            f"the dataset is used by {len(active)} queued or running run(s)",
            {"runs": [str(r) for r in active]},
            code="dataset_in_use",
        )
    dataset_store.delete_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    session.commit()


def load_dataset(
    session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID
) -> tuple[Dataset, ParsedDataset]:
    """The stored arrays, with the blob's hash verified."""
    row = dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, with_blob=True
    )
    if row is None:
        raise _not_found()
    if hashlib.sha256(row.blob).hexdigest() != row.blob_sha256:
        raise DescentError(
            "stored dataset failed its integrity check",
            {"dataset_id": str(dataset_id)},
            code="dataset_corrupt",
        )
    return row, decode_npz(row.blob)


__all__ = [
    "FeatureType",
    "ParsedDataset",
    "create_dataset",
    "decode_npz",
    "delete_dataset",
    "detect_format",
    "encode_npz",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "parse_upload",
]
