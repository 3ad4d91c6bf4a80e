"""NPZ uploads: arrays ``X`` (2-D numeric), ``y`` (1-D) and optionally ``feature_names``,
read without pickle and with every header checked before an array is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core import npz
from core.config import Settings
from core.datasets.columns import (
    check_counts,
    feature_names,
    numeric_dataset,
    shape_mismatch,
)
from core.datasets.labels import label_from_strings, numeric_label
from core.datasets.parsed import Deadline, Locator, ParsedDataset
from core.errors import InvalidInput
from store.tables import DatasetFormat

# Rows of X checked for finiteness at a time: the check's boolean temporary stays small.
_BLOCK_VALUES = 1 << 20


def parse_npz(
    path: Path, *, label: str | None, settings: Settings, deadline: Deadline | None = None
) -> ParsedDataset:
    deadline = deadline or Deadline(settings.parse_budget_seconds)
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
        raise shape_mismatch(hx.shape[0], hy.shape[0])
    check_counts(hx.shape[0], hx.shape[1], settings)
    wanted = ["X", "y"] + (["feature_names"] if "feature_names" in headers else [])
    arrays = npz.load_arrays(path, wanted, max_bytes=settings.max_decompressed_bytes)

    deadline.check()
    x = arrays.pop("X").astype(np.float64, copy=False)
    _check_finite(x, deadline)
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
    names = feature_names(names_given, x.shape[1])
    label = label or "y"

    deadline.check()
    y = arrays["y"].reshape(-1)
    loc = Locator()
    if y.dtype.kind == "U":
        target = label_from_strings(pl.Series("y", y, dtype=pl.String), label, loc, settings)
    elif y.dtype.kind == "b":
        strings = np.where(y, "true", "false")
        target = label_from_strings(pl.Series("y", strings, dtype=pl.String), label, loc, settings)
    else:
        target = numeric_label(y.astype(np.float64), label, loc)
    return numeric_dataset(DatasetFormat.npz, x, names, label, target)


def _check_finite(x: NDArray[np.float64], deadline: Deadline) -> None:
    step = max(1, _BLOCK_VALUES // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):
        block = x[start : start + step]
        finite = ~np.isinf(block)  # NaN is a missing value
        if not finite.all():
            r, col = (int(v) for v in np.argwhere(~finite)[0])
            row = start + r
            raise InvalidInput(
                f"non-finite value {x[row, col]!r} in X at row {row}, column {col}",
                {"array": "X", "row": row, "column": col, "value": str(x[row, col])},
                code="non_finite_value",
            )
        deadline.check()
