"""The in-memory form of a validated dataset, how errors name a place in the input, and the
wall-clock budget every parser checks between its phases.

Numeric features are one float64 matrix, categorical features int32 codes into a sorted
per-column vocabulary (strings are never stored as wide fixed-width arrays or Python objects),
and the label its values (float64 for regression, int64 or str for classification). Every bad
input is a typed error naming column, line (1-based physical line of the file, header = line 1)
or record, and the offending value.
"""

from __future__ import annotations

import csv
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.errors import MAX_QUOTED_CHARS, InvalidInput, PayloadTooLarge
from models.vocabulary import FeatureType, Task
from store.tables import DatasetFormat

# Cells of the missing-value mask made at a time.
_MASK_CELLS = 1 << 22


@dataclass(frozen=True, eq=False)
class ParsedDataset:
    """A validated dataset.

    ``X_numeric`` holds the numeric features (``n_rows x n_numeric``; float64, or float32 when
    that holds every value exactly: see ``csv._read_numeric``; readers widen it) and
    ``X_categorical`` the categorical ones (int32 codes, ``n_rows x n_categorical``), each
    in the order they appear in ``feature_names``; ``categories[j]`` is the sorted
    vocabulary of the j-th categorical feature. A missing value is NaN in ``X_numeric`` and
    -1 in ``X_categorical``. ``y`` is float64 for regression; for classification it holds
    the label values (int64 or str), and ``classes`` their sorted distinct values.
    """

    format: DatasetFormat
    feature_names: list[str]
    feature_types: list[FeatureType]
    X_numeric: NDArray[np.floating[Any]]
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
    def categorical_names(self) -> list[str]:
        return [
            n
            for n, t in zip(self.feature_names, self.feature_types, strict=True)
            if t == "categorical"
        ]

    @cached_property
    def numeric_gaps(self) -> NDArray[np.intp]:
        """Missing values per numeric column, counted a block of rows at a time: a mask of the
        whole matrix would cost a byte a cell, half the file for short cells like "0,"."""
        x = self.X_numeric
        counts = np.zeros(x.shape[1], dtype=np.intp)
        step = max(1, _MASK_CELLS // max(x.shape[1], 1))
        for start in range(0, x.shape[0], step):
            counts += np.isnan(x[start : start + step]).sum(axis=0)
        return counts

    @property
    def n_inputs(self) -> int:
        """The network's input width: numeric features and one column per category, plus a
        "was missing" input per numeric feature with gaps and a "missing" category per
        categorical one (as training would fit on the whole dataset)."""
        gaps = np.count_nonzero(self.numeric_gaps) + (self.X_categorical < 0).any(axis=0).sum()
        return int(self.X_numeric.shape[1]) + sum(len(c) for c in self.categories) + int(gaps)

    def missing_counts(self) -> dict[str, int]:
        """Missing values per feature (NaN, or code -1), only for the features that have any."""
        numeric = self.numeric_gaps.tolist()
        categorical = (self.X_categorical < 0).sum(axis=0).tolist()
        counts = iter(numeric), iter(categorical)
        found = {
            name: next(counts[0] if kind == "numeric" else counts[1])
            for name, kind in zip(self.feature_names, self.feature_types, strict=True)
        }
        return {name: int(n) for name, n in found.items() if n}

    def class_counts(self) -> list[int] | None:
        if self.classes is None:
            return None
        counts: list[int] = np.bincount(self.y_codes(), minlength=len(self.classes)).tolist()
        return counts

    def y_codes(self) -> NDArray[np.int64]:
        """Class indices into ``classes`` (classification only)."""
        if self.classes is None:
            raise ValueError("y_codes() is only defined for classification datasets")
        return np.searchsorted(np.asarray(self.classes), self.y).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Error locations


class Locator:
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


class RecordLocator(Locator):
    key = "record"


class CsvLocator(Locator):
    """Physical 1-based file lines, correct across quoted fields that contain newlines.

    ``frame`` holds the rows as read, to count the newlines inside quoted fields before a row;
    without it every row is one line (the numeric fast path only runs on files without quotes).
    """

    key = "line"

    def __init__(
        self,
        path: Path,
        *,
        header_lines: int,
        sep: str,
        width: int,
        frame: pl.DataFrame | None = None,
    ) -> None:
        self.path = path
        self.header_lines = header_lines
        self.sep = sep
        self.width = width
        self.frame = frame

    def position(self, row: int) -> int:
        embedded = 0
        if row > 0 and self.frame is not None:
            # Only on the error path. Numbers never hold a newline: count in text columns only.
            counts = self.frame.head(row).select(pl.col(pl.String).str.count_matches("\n").sum())
            embedded = sum(int(c or 0) for c in counts.row(0)) if counts.width else 0
        return self.header_lines + 1 + row + embedded

    def missing_value(self, row: int, column: str) -> InvalidInput:
        # polars pads short rows with nulls; read the raw record to tell a ragged row from an
        # empty field.
        line = self.position(row)
        fields = _csv_record_at(self.path, line, self.sep)
        if fields is not None and len(fields) != self.width:
            return ragged(line, len(fields), self.width)
        return InvalidInput(
            f"missing value in column {column!r} at line {line}",
            {"column": column, "line": line},
            code="missing_value",
        )


def exact_in_float32(values: NDArray[np.float64]) -> bool:
    """Whether float32 holds every value exactly (NaN, a missing value, included)."""
    with np.errstate(over="ignore"):  # past float32's range: inf, so not equal, so not exact
        return bool(np.array_equal(values.astype(np.float32), values, equal_nan=True))


def widened(x: NDArray[np.floating[Any]], filled: int) -> NDArray[np.float64]:
    """``x`` as float64, its first ``filled`` rows copied: a value float32 cannot hold came."""
    wide = np.empty(x.shape, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # rows of a block being filled hold no values yet
        wide[:filled] = x[:filled]
    return wide


def ragged(line: int, found: int, expected: int) -> InvalidInput:
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


def excerpt(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """A client's value as error details repeat it: at most ``limit`` characters."""
    return value if len(value) <= limit else value[:limit]


# ---------------------------------------------------------------------------------------------
# Parse budget


class Deadline:
    """``Settings.parse_budget_seconds`` from the start of a parse. Checked between phases and
    every few thousand records of a Python loop; a phase itself (one polars call) is not
    interrupted, so an overrun is at most one phase long."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def check(self) -> None:
        if self._clock() > self._end:
            raise PayloadTooLarge(
                f"parsing the upload took longer than its budget of {self.seconds:g} s "
                "(setting parse_budget_seconds, DESCENT_PARSE_BUDGET_SECONDS); send a smaller "
                "file, or NPZ, which parses fastest",
                {"setting": "parse_budget_seconds", "limit_seconds": self.seconds},
                code="parse_budget_exceeded",
            )
