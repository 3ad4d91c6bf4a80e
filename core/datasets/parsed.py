"""The in-memory form of a validated dataset, and how errors name a place in the input.

Numeric features are one float64 matrix, categorical features int32 codes into a sorted
per-column vocabulary (strings are never stored as wide fixed-width arrays or Python objects),
and the label its values (float64 for regression, int64 or str for classification). Every bad
input is a typed error naming column, line (1-based physical line of the file, header = line 1)
or record, and the offending value.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.errors import InvalidInput
from models.vocabulary import FeatureType, Task
from store.tables import DatasetFormat


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
    def categorical_names(self) -> list[str]:
        return [
            n
            for n, t in zip(self.feature_names, self.feature_types, strict=True)
            if t == "categorical"
        ]

    @property
    def n_inputs(self) -> int:
        """The network's input width: numeric features plus one column per category."""
        return int(self.X_numeric.shape[1]) + sum(len(c) for c in self.categories)

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
            return ragged(line, len(fields), expected)
        return InvalidInput(
            f"missing value in column {column!r} at line {line}",
            {"column": column, "line": line},
            code="missing_value",
        )


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
