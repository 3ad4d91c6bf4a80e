"""A dataset's profile: per-column summary statistics and the label's distribution.

Computed once at upload from the in-memory ``ParsedDataset`` (the parsed matrices, not the
raw file), so ``GET /v1/datasets/{id}/profile`` answers from storage without reloading the
data. The numbers are those polars gives for the same file read with its missing values as
nulls: users check a profile against ``describe()``, so it must agree with it. The result is
JSON-safe: plain Python numbers and strings, and None (never NaN) where a statistic is
undefined, e.g. for a column whose every value is missing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.datasets.parsed import ParsedDataset

# Sample standard deviation (ddof=1), as polars' ``std``/``describe()`` and pandas give it:
# the figures users compare a profile against. Undefined (None) with fewer than two values.
DDOF = 1
# Whole-number labels counted per value up to the class limit (models.spec.MAX_CLASSES).
_MAX_COUNTED = 1_000


def profile_of(parsed: ParsedDataset, *, top: int = 10) -> dict[str, Any]:
    """The profile of ``parsed``: ``n_rows``, ``columns`` (in the original column order) and
    ``label``; categorical columns list their ``top`` most frequent values (ties by value)."""
    numeric = iter(_numeric_columns(parsed.X_numeric))
    categorical = iter(_categorical_columns(parsed.X_categorical, parsed.categories, top))
    columns = [
        {"name": name, "type": str(kind), **next(numeric if kind == "numeric" else categorical)}
        for name, kind in zip(parsed.feature_names, parsed.feature_types, strict=True)
    ]
    label: dict[str, Any] = {"name": parsed.label, "task": str(parsed.task)}
    counts = parsed.class_counts()
    if parsed.classes is not None and counts is not None:
        label["distribution"] = [[c, n] for c, n in zip(parsed.classes, counts, strict=True)]
    else:
        y = np.asarray(parsed.y, dtype=np.float64).reshape(-1, 1)
        stats = _numeric_columns(y)[0]
        label.update(distribution=None, **{k: stats[k] for k in ("min", "max", "mean", "std")})
        # What a request for classification of these labels needs to know (core.runs).
        flat = y.reshape(-1)
        values, tallies = np.unique(flat, return_counts=True)
        label["n_unique"] = len(values)
        label["integral"] = bool(np.all(np.mod(flat, 1) == 0) and np.all(np.abs(flat) < 2**53))
        if label["integral"] and len(values) <= _MAX_COUNTED:
            # Rows per whole number, as classes would have them (stratified split sizes).
            label["value_counts"] = [[int(v), int(n)] for v, n in zip(values, tallies, strict=True)]
    return {"n_rows": parsed.n_rows, "columns": columns, "label": label}


def _numeric_columns(x: NDArray[np.floating[Any]]) -> list[dict[str, Any]]:
    """Statistics of every column of ``x``, ignoring NaN (missing). A column at a time, so the
    temporaries are a few copies of one column, never of the matrix (the upload's peak)."""
    return [_column_stats(x[:, j]) for j in range(x.shape[1])]


def _column_stats(column: NDArray[np.floating[Any]]) -> dict[str, Any]:
    values = column[~np.isnan(column)].astype(np.float64)
    count = len(values)
    stats: dict[str, Any] = {"missing": len(column) - count, "n_unique": 0}
    if not count:
        return stats | dict.fromkeys(("min", "max", "mean", "std"))
    mean = values.mean()
    std = values.std(ddof=DDOF) if count > DDOF else np.float64("nan")
    values.sort()
    return stats | {
        "min": _number(values[0]),
        "max": _number(values[-1]),
        "mean": _number(mean),
        "std": _number(std),
        "n_unique": 1 + int(np.count_nonzero(values[1:] != values[:-1])),
    }


def _categorical_columns(
    codes: NDArray[np.int32], categories: list[list[str]], top: int
) -> list[dict[str, Any]]:
    """Missing and distinct counts and the most frequent values of each column of ``codes``."""
    missing = (codes < 0).sum(axis=0)
    columns = []
    for j, vocabulary in enumerate(categories):
        column = codes[:, j]
        counts = np.bincount(column[column >= 0], minlength=len(vocabulary))
        # The vocabulary is sorted: a stable sort by descending count breaks ties by value.
        order = np.argsort(-counts, kind="stable")[: max(top, 0)]
        columns.append(
            {
                "missing": int(missing[j]),
                "n_unique": int(np.count_nonzero(counts)),
                "top": [[vocabulary[i], int(counts[i])] for i in order.tolist() if counts[i]],
            }
        )
    return columns


def _number(value: np.floating[Any]) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
