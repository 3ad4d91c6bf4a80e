"""The label column: its values, the task they imply (classification or regression) and their
classes. A row without a label is refused, naming its line or record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.parsed import Locator
from core.datasets.values import check_vocabulary, is_missing, numeric_kind
from core.errors import InvalidInput, quote
from models import infer_task
from models.vocabulary import Task


@dataclass(frozen=True)
class Label:
    y: NDArray[Any]
    task: Task
    classes: list[int] | list[str] | None


def numeric_label(y: NDArray[np.float64], name: str, loc: Locator) -> Label:
    """Every row needs its label: a missing one (NaN) is refused, naming where, as is infinity."""
    missing = np.isnan(y)
    if missing.any():
        raise loc.missing_value(int(np.argmax(missing)), name)
    finite = np.isfinite(y)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidInput(
            f"non-finite value {y[row]!r} in label {quote(name)} {loc.describe(row)}",
            {"column": name, **loc.where(row), "value": str(y[row])},
            code="non_finite_value",
        )
    task, _ = infer_task(y)
    distinct = np.unique(y)
    if task is Task.classification:
        classes = [int(v) for v in distinct]
        require_two_classes(classes, name)
        return Label(y.astype(np.int64), Task.classification, classes)
    if len(distinct) < 2:
        raise InvalidInput(
            f"label {quote(name)} has a single value ({distinct[0]!r}); nothing to learn",
            {"column": name},
            code="single_class",
        )
    return Label(y.astype(np.float64, copy=False), Task.regression, None)


def require_two_classes(classes: list[int] | list[str], name: str) -> None:
    if len(classes) < 2:
        raise InvalidInput(
            f"label {quote(name)} has only one class ({quote(classes[0])}); "
            "classification needs at least 2 classes",
            {"column": name, "classes": classes},
            code="single_class",
        )


def label_from_strings(raw: pl.Series, name: str, loc: Locator, settings: Settings) -> Label:
    values = raw.str.strip_chars()
    missing = raw.to_frame("v").select(is_missing("v")).to_series()
    if missing.any():
        raise loc.missing_value(int(missing.arg_true()[0]), name)
    if numeric_kind(raw, name, loc) == "numeric":
        return numeric_label(values.cast(pl.Float64).to_numpy(), name, loc)
    longest = values.str.len_chars().max()
    distinct = values.unique().sort()
    check_vocabulary(
        name, len(distinct), int(longest) if isinstance(longest, int) else 0, settings, "label"
    )
    vocabulary: list[str] = distinct.to_list()
    require_two_classes(vocabulary, name)
    codes = values.cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    return Label(np.asarray(vocabulary, dtype=np.str_)[codes], Task.classification, vocabulary)
