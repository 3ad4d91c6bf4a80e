"""Preprocessing fitted on the training split and stored with the model.

Features arrive raw: a numeric array, or rows mixing numbers and strings. Numeric columns are
standardized (mean/std of the training split); categorical columns are one-hot encoded over the
categories seen in training (an unseen category encodes as all zeros, as scikit-learn's
handle_unknown="ignore"). Network inputs are the numeric columns first, then each categorical
column's one-hot block. Class labels become indices into the sorted `classes`; regression
targets are standardized for training and mapped back on prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import DataError, InputError
from models.types import Array
from models.vocabulary import FeatureType


def _to_json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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


def as_rows(X: Any, error: type[DataError] | type[InputError]) -> Array:
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


@dataclass
class Preprocessor:
    feature_names: list[str]
    feature_types: list[FeatureType]
    mean: Array  # per numeric feature, float64
    scale: Array
    categories: list[list[str]] = field(default_factory=list)  # per categorical feature

    @property
    def numeric_columns(self) -> list[int]:
        return [j for j, t in enumerate(self.feature_types) if t == "numeric"]

    @property
    def categorical_columns(self) -> list[int]:
        return [j for j, t in enumerate(self.feature_types) if t == "categorical"]

    @property
    def n_inputs(self) -> int:
        return len(self.numeric_columns) + sum(len(c) for c in self.categories)

    @classmethod
    def fit(
        cls,
        rows: Array,
        *,
        feature_names: list[str],
        feature_types: list[FeatureType],
        standardize: bool,
    ) -> Preprocessor:
        numeric = _numeric_block(rows, feature_types, feature_names, DataError)
        if standardize and len(numeric):
            mean = numeric.mean(axis=0)
            scale = numeric.std(axis=0)
            scale[scale == 0.0] = 1.0  # a constant column stays constant (zero), not NaN
        else:
            mean = np.zeros(numeric.shape[1])
            scale = np.ones(numeric.shape[1])
        categories = [
            sorted({str(v) for v in rows[:, j]})
            for j, t in enumerate(feature_types)
            if t == "categorical"
        ]
        return cls(list(feature_names), list(feature_types), mean, scale, categories)

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
        out = np.zeros((rows.shape[0], self.n_inputs + int(augment)), dtype=dtype)
        numeric = _numeric_block(rows, self.feature_types, self.feature_names, error)
        k = numeric.shape[1]
        np.subtract(numeric, self.mean, out=numeric)
        np.divide(numeric, self.scale, out=numeric)
        out[:, :k] = numeric
        for j, cats in zip(self.categorical_columns, self.categories, strict=True):
            lookup = {c: i for i, c in enumerate(cats)}
            idx = np.fromiter((lookup.get(str(v), -1) for v in rows[:, j]), dtype=np.int64)
            known = idx >= 0
            out[np.flatnonzero(known), k + idx[known]] = 1.0
            k += len(cats)
        if augment:
            out[:, -1] = 1.0
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            list(data["feature_names"]),
            list(data["feature_types"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            [list(c) for c in data["categories"]],
        )


def _numeric_block(
    rows: Array,
    feature_types: list[FeatureType],
    feature_names: list[str],
    error: type[DataError] | type[InputError],
) -> Array:
    """The numeric columns as a fresh float64 array; names the row and feature of a bad value."""
    cols = [j for j, t in enumerate(feature_types) if t == "numeric"]
    if rows.dtype.kind in "biuf":
        block = rows[:, cols].astype(np.float64)
    else:
        block = np.empty((rows.shape[0], len(cols)), dtype=np.float64)
        for k, j in enumerate(cols):
            try:
                block[:, k] = rows[:, j].astype(np.float64)
            except (ValueError, TypeError):
                for i, v in enumerate(rows[:, j]):
                    if not _is_number(v):
                        raise error(
                            f"row {i}, feature {feature_names[j]!r}: {str(v)!r} is not a number",
                            row=i,
                            feature=feature_names[j],
                            value=str(v),
                        ) from None
                raise
    finite = np.isfinite(block)
    if not finite.all():
        i, k = (int(a[0]) for a in np.nonzero(~finite))
        name = feature_names[cols[k]]
        raise error(
            f"row {i}, feature {name!r}: {block[i, k]} is not a finite number",
            row=i,
            feature=name,
            value=str(block[i, k]),
        )
    return block


@dataclass
class LabelEncoder:
    """Class labels (strings, ints, bools) <-> indices into the sorted `classes`."""

    classes: list[Any]

    @classmethod
    def fit(cls, y: Array) -> LabelEncoder:
        try:
            classes = np.unique(y)
        except TypeError:
            raise DataError(
                "labels mix types that cannot be ordered (e.g. numbers and text)"
            ) from None
        return cls([_to_json_scalar(c) for c in classes])

    def encode(self, y: Array) -> Array:
        classes = np.asarray(self.classes)
        idx = np.searchsorted(classes, y)
        idx = np.clip(idx, 0, len(classes) - 1)
        bad = classes[idx] != y
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"row {i}: label {y[i]!r} is not one of the classes", row=i)
        return idx.astype(np.int64)


@dataclass
class TargetScaler:
    """Regression targets standardized for training, mapped back on prediction."""

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, y: Array, standardize: bool) -> TargetScaler:
        if not standardize:
            return cls(np.zeros(y.shape[1]), np.ones(y.shape[1]))
        scale = y.std(axis=0)
        scale[scale == 0.0] = 1.0
        return cls(y.mean(axis=0), scale)

    def transform(self, y: Array) -> Array:
        return (y - self.mean) / self.scale

    def inverse(self, z: Array) -> Array:
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean
