"""Preprocessing fitted on the training split and stored with the model.

Features arrive raw: a numeric array, or rows mixing numbers and strings. A missing value is
NaN or None. Numeric columns are imputed (the training split's median or mean) and standardized
(mean/std of the training split, after imputing); each numeric column that had a missing value
in training also gets a 0/1 "was missing" input. Categorical columns are one-hot encoded over
the categories seen in training (an unseen category encodes as all zeros, as scikit-learn's
handle_unknown="ignore"), plus a "missing" slot for a column that had missing values in
training. Network inputs are the numeric columns, then the missing indicators, then each
categorical column's one-hot block (and its missing slot). The labels' side is models.targets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import DataError, InputError
from models.types import Array
from models.vocabulary import FeatureType


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def frame_columns(X: Any) -> tuple[list[str], list[FeatureType]] | None:
    """A pandas or polars DataFrame's column names and feature types (numbers are numeric,
    anything else, bool included, categorical); None for anything that is not a frame. Duck
    typed: this module imports neither library."""
    if not (hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "to_numpy")):
        return None
    names = [str(c) for c in X.columns]
    types = []
    for dtype in X.dtypes:
        kind = getattr(dtype, "kind", None)  # numpy and pandas dtypes
        numeric = kind in ("i", "u", "f") if isinstance(kind, str) else dtype.is_numeric()
        types.append(FeatureType.numeric if numeric else FeatureType.categorical)
    return names, types


def _frame_values(X: Any, types: list[FeatureType]) -> Array:
    """A frame's values with missing ones as NaN (numbers) or None (anything else)."""
    numeric = all(t == "numeric" for t in types)
    dtype, na = (np.float64, np.nan) if numeric else (object, None)
    try:
        values = X.to_numpy(dtype=dtype, na_value=na)  # pandas: pd.NA and NaT become `na`
    except TypeError:
        values = X.to_numpy()  # polars: nulls are already None (object) or NaN (float)
    return np.asarray(values, dtype=dtype)


def as_rows(
    X: Any, error: type[DataError] | type[InputError], columns: list[str] | None = None
) -> Array:
    """Any 2-D array-like as an ndarray; a DataFrame's columns are taken by name when
    ``columns`` is given (predict), else in its order."""
    frame = frame_columns(X)
    if frame is not None:
        names, types = frame
        if columns is not None:
            absent = [c for c in columns if c not in names]
            if absent:
                raise error(f"the DataFrame has no column {absent[0]!r}", feature=absent[0])
            X = X[columns]
            types = [types[names.index(c)] for c in columns]
        return _frame_values(X, types)
    return _as_array(X, error)


def _as_array(X: Any, error: type[DataError] | type[InputError]) -> Array:
    """Any 2-D array-like as an ndarray (numeric dtype when possible, else object)."""
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise error(f"features must be a rectangular table: {exc}") from None
    if arr.dtype.kind not in "biufUSO":
        raise error(f"unsupported feature dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if arr.size else arr.reshape(0, 0)
    if arr.ndim != 2:
        raise error(f"features must be 2-dimensional (rows x features), got shape {arr.shape}")
    return arr


def infer_feature_types(rows: Array) -> list[FeatureType]:
    if rows.dtype.kind in "biuf":
        return [FeatureType.numeric] * rows.shape[1]
    return [
        FeatureType.numeric if all(_is_number(v) for v in rows[:, j]) else FeatureType.categorical
        for j in range(rows.shape[1])
    ]


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and bool(np.isnan(value)))


@dataclass
class Preprocessor:
    feature_names: list[str]
    feature_types: list[FeatureType]
    mean: Array  # per numeric feature, float64
    scale: Array
    categories: list[list[str]] = field(default_factory=list)  # per categorical feature
    impute: str = "median"
    # Per numeric feature: what a missing value becomes.
    fill: Array = field(default_factory=lambda: np.zeros(0))
    # Positions in the numeric block of the columns with a "was missing" input.
    indicators: list[int] = field(default_factory=list)
    # Per categorical feature: whether it has a "missing" slot after its categories.
    missing_slot: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.fill) == 0:
            self.fill = np.zeros(len(self.mean))
        if not self.missing_slot:
            self.missing_slot = [False] * len(self.categories)
        # Fixed once fitted; predict of a few rows is dominated by such per-call bookkeeping.
        self._numeric_idx = self.numeric_columns
        self._width = self.n_inputs
        self._plain = (
            not self.categories and not self.indicators and self._width == len(self.feature_names)
        )
        self._categorical = [
            (j, {c: i for i, c in enumerate(cats)}, len(cats), slot)
            for j, cats, slot in zip(
                self.categorical_columns, self.categories, self.missing_slot, strict=True
            )
        ]

    @property
    def numeric_columns(self) -> list[int]:
        return [j for j, t in enumerate(self.feature_types) if t == "numeric"]

    @property
    def categorical_columns(self) -> list[int]:
        return [j for j, t in enumerate(self.feature_types) if t == "categorical"]

    @property
    def n_inputs(self) -> int:
        categorical = sum(
            len(c) + m for c, m in zip(self.categories, self.missing_slot, strict=True)
        )
        return len(self.numeric_columns) + len(self.indicators) + categorical

    @classmethod
    def fit(
        cls,
        rows: Array,
        *,
        feature_names: list[str],
        feature_types: list[FeatureType],
        standardize: bool,
        impute: str = "median",
    ) -> Preprocessor:
        allow = impute != "none"
        numeric_idx = [j for j, t in enumerate(feature_types) if t == "numeric"]
        numeric = _numeric_block(rows, numeric_idx, feature_names, DataError, allow_missing=allow)
        missing = np.isnan(numeric)
        indicators = np.flatnonzero(missing.any(axis=0)).tolist()
        # Every column gets its fill, so that a gap first seen at predict time is filled too.
        fill = np.zeros(numeric.shape[1])
        if len(numeric) and numeric.shape[1]:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: NaN
                center = np.nanmedian if impute == "median" else np.nanmean
                fill = np.asarray(center(numeric, axis=0), dtype=np.float64)
            fill[~np.isfinite(fill)] = 0.0
        if indicators:
            numeric = np.where(missing, fill, numeric)
        if standardize and len(numeric):
            mean = numeric.mean(axis=0)
            scale = numeric.std(axis=0)
            scale[scale == 0.0] = 1.0  # a constant column stays constant (zero), not NaN
        else:
            mean = np.zeros(numeric.shape[1])
            scale = np.ones(numeric.shape[1])
        categories: list[list[str]] = []
        missing_slot: list[bool] = []
        for j, t in enumerate(feature_types):
            if t != "categorical":
                continue
            gaps = [is_missing(v) for v in rows[:, j]]
            if any(gaps) and not allow:
                i = gaps.index(True)
                raise DataError(
                    f"row {i}, feature {feature_names[j]!r}: a missing value, and "
                    "preprocessing.impute is 'none'",
                    row=i,
                    feature=feature_names[j],
                )
            categories.append(
                sorted({str(v) for v, gap in zip(rows[:, j], gaps, strict=True) if not gap})
            )
            missing_slot.append(any(gaps))
        return cls(
            list(feature_names), list(feature_types), mean, scale, categories,
            impute=impute, fill=fill, indicators=indicators, missing_slot=missing_slot,
        )  # fmt: skip

    def _standardize_finite(self, rows: Array, dtype: np.dtype[Any] | str) -> Array | None:
        """Every feature numeric and no indicator columns: the standardized rows, computed as
        the general path computes them, when every value is finite (else None: the general
        path imputes or names the bad value). A few-row predict is mostly numpy's per-call
        cost, and this makes 5 calls where the general path makes 10."""
        if not np.isfinite(rows).all():
            return None
        centered = np.subtract(rows, self.mean)
        out: Array = np.divide(centered, self.scale, out=np.empty(rows.shape, dtype=dtype))
        return out

    def transform(
        self,
        rows: Array,
        *,
        dtype: np.dtype[Any] | str = "float32",
        augment: bool = False,
        error: type[DataError] | type[InputError] = InputError,
    ) -> Array:
        """(n, n_features) raw -> (n, n_inputs) network inputs (+ a ones column if `augment`)."""
        if rows.shape[1] != len(self.feature_names):
            raise error(
                f"expected {len(self.feature_names)} features, got {rows.shape[1]}",
                expected=len(self.feature_names),
                got=int(rows.shape[1]),
            )
        if self._plain and not augment and rows.dtype == np.float64:
            fast = self._standardize_finite(rows, dtype)
            if fast is not None:
                return fast
        out = np.empty((rows.shape[0], self._width + int(augment)), dtype=dtype)
        numeric = _numeric_block(
            rows, self._numeric_idx, self.feature_names, error, allow_missing=self.impute != "none"
        )
        k = numeric.shape[1]
        missing = np.isnan(numeric)
        if self.indicators or k < self._width:
            out[:, k:] = 0.0
        if missing.any():
            numeric = np.where(missing, self.fill, numeric)
        np.subtract(numeric, self.mean, out=numeric)
        np.divide(numeric, self.scale, out=out[:, :k], casting="same_kind")
        if self.indicators:
            out[:, k : k + len(self.indicators)] = missing[:, self.indicators]
            k += len(self.indicators)
        for j, lookup, n_cats, slot in self._categorical:
            if slot:
                idx = np.fromiter(
                    (n_cats if is_missing(v) else lookup.get(str(v), -1) for v in rows[:, j]),
                    dtype=np.int64,
                )
            else:
                idx = np.fromiter((lookup.get(str(v), -1) for v in rows[:, j]), dtype=np.int64)
            known = idx >= 0
            out[np.flatnonzero(known), k + idx[known]] = 1.0
            k += n_cats + slot
        if augment:
            out[:, -1] = 1.0
        return out

    def to_json(self) -> dict[str, Any]:
        """What the model's JSON holds (the arrays mean, scale and fill are stored beside it)."""
        return {
            "feature_names": self.feature_names,
            "feature_types": self.feature_types,
            "categories": self.categories,
            "impute": self.impute,
            "indicators": self.indicators,
            "missing_slot": self.missing_slot,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        """Models saved before imputation existed have none of its keys: no fill, no slots."""
        mean = np.asarray(data["mean"], dtype=np.float64)
        fill = data.get("fill")
        return cls(
            list(data["feature_names"]),
            list(data["feature_types"]),
            mean,
            np.asarray(data["scale"], dtype=np.float64),
            [list(c) for c in data["categories"]],
            impute=str(data.get("impute", "median")),
            fill=np.zeros(len(mean)) if fill is None else np.asarray(fill, dtype=np.float64),
            indicators=[int(i) for i in data.get("indicators", [])],
            missing_slot=[bool(m) for m in data.get("missing_slot", [])],
        )


def _numeric_block(
    rows: Array,
    cols: list[int],
    feature_names: list[str],
    error: type[DataError] | type[InputError],
    *,
    allow_missing: bool = True,
) -> Array:
    """The numeric columns as a fresh float64 array, NaN where a value is missing (None or
    NaN); names the row and feature of a bad value (text, infinity, or a missing value when
    they are refused)."""
    if rows.dtype.kind in "biuf" and len(cols) == rows.shape[1]:
        block = rows.astype(np.float64)  # a plain copy is cheaper than a gather
    elif rows.dtype.kind in "biuf":
        block = rows[:, cols].astype(np.float64, copy=False)  # the gather made a copy
    else:
        block = np.empty((rows.shape[0], len(cols)), dtype=np.float64)
        for k, j in enumerate(cols):
            column = rows[:, j]
            try:
                block[:, k] = column.astype(np.float64)
            except (ValueError, TypeError):
                for i, v in enumerate(column):
                    if is_missing(v):
                        block[i, k] = np.nan
                    elif _is_number(v):
                        block[i, k] = float(v)
                    else:
                        raise error(
                            f"row {i}, feature {feature_names[j]!r}: {str(v)!r} is not a number",
                            row=i,
                            feature=feature_names[j],
                            value=str(v),
                        ) from None
    if np.isfinite(block).all():
        return block
    bad = np.isinf(block) if allow_missing else ~np.isfinite(block)
    if bad.any():
        i, k = (int(a[0]) for a in np.nonzero(bad))
        name = feature_names[cols[k]]
        what = "a missing value, and preprocessing.impute is 'none'"
        raise error(
            f"row {i}, feature {name!r}: "
            + (what if np.isnan(block[i, k]) else f"{block[i, k]} is not a finite number"),
            row=i,
            feature=name,
            value=str(block[i, k]),
        )
    return block
