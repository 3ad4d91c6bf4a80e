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


def _numeric_columns(x: NDArray[np.float64]) -> list[dict[str, Any]]:
    """Statistics of every column of ``x`` at once, ignoring NaN (missing)."""
    present = ~np.isnan(x)
    count = present.sum(axis=0)
    # fmin/fmax skip NaN without the all-NaN warning of nanmin; NaN stays for an empty column.
    lo = np.fmin.reduce(x, axis=0, initial=np.nan)
    hi = np.fmax.reduce(x, axis=0, initial=np.nan)
    filled = np.where(present, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / count
        squares = (np.where(present, x - mean, 0.0) ** 2).sum(axis=0)
        std = np.sqrt(squares / (count - DDOF))
    std[count <= DDOF] = np.nan
    # Distinct values: NaN sorts last, so count the changes between neighbours before it.
    ordered = np.sort(x, axis=0)
    changes = ((ordered[1:] != ordered[:-1]) & ~np.isnan(ordered[1:])).sum(axis=0)
    distinct = changes + (count > 0)
    return [
        {
            "missing": int(x.shape[0] - count[j]),
            "min": _number(lo[j]),
            "max": _number(hi[j]),
            "mean": _number(mean[j]),
            "std": _number(std[j]),
            "n_unique": int(distinct[j]),
        }
        for j in range(x.shape[1])
    ]


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
