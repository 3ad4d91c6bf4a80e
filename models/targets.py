"""The labels' side of preprocessing, fitted on the training split and stored with the model:
class labels become indices into the sorted ``classes``; regression targets are standardized for
training and mapped back on prediction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import DataError
from models.types import Array


def _to_json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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
