"""Columns to features and label: typing (numeric or categorical), vocabularies, checks of
counts, names and values, shared by every format that arrives as a table of strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.parsed import Locator, ParsedDataset
from core.errors import InvalidInput, PayloadTooLarge
from models import infer_task
from models.vocabulary import FeatureType, Task
from store.tables import MAX_NAME_CHARS, DatasetFormat

# Longest categorical value or string label; bounds fixed-width string arrays.
MAX_CATEGORY_CHARS = 256
MIN_ROWS = 2


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


def _check_missing(frame: pl.DataFrame, loc: Locator) -> None:
    counts = frame.select(_is_missing(c).sum() for c in frame.columns).row(0)
    if not any(counts):
        return
    flags = frame.select(_is_missing(c) for c in frame.columns)
    row = int(flags.select(pl.any_horizontal(pl.all())).to_series().arg_true()[0])
    column = next(c for c in frame.columns if flags[c][row])
    raise loc.missing_value(row, column)


def _numeric_kind(raw: pl.Series, floats: pl.Series, name: str, loc: Locator) -> FeatureType:
    """numeric if every value parses; a mostly-numeric column with a stray value is an error;
    a column of mostly non-numbers is categorical."""
    bad = floats.null_count()
    if bad == 0:
        _check_finite(raw, floats, name, loc)
        return FeatureType.numeric
    if 2 * bad < len(floats):
        row = int(floats.is_null().arg_true()[0])
        value = raw[row]
        raise InvalidInput(
            f"non-numeric value {value!r} in numeric column {name!r} {loc.describe(row)}",
            {"column": name, **loc.where(row), "value": value, "expected": "number"},
            code="non_numeric_value",
        )
    return FeatureType.categorical


def _check_finite(raw: pl.Series | None, floats: pl.Series, name: str, loc: Locator) -> None:
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


def numeric_label(y: NDArray[np.float64], name: str, loc: Locator) -> _Label:
    finite = np.isfinite(y)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidInput(
            f"non-finite value {y[row]!r} in label {name!r} {loc.describe(row)}",
            {"column": name, **loc.where(row), "value": str(y[row])},
            code="non_finite_value",
        )
    task, _ = infer_task(y)
    distinct = np.unique(y)
    if task is Task.classification:
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


def label_from_strings(raw: pl.Series, name: str, loc: Locator, settings: Settings) -> _Label:
    values = raw.str.strip_chars()
    missing = values.is_null() | (values.str.len_bytes() == 0)
    if missing.any():
        raise loc.missing_value(int(missing.arg_true()[0]), name)
    floats = values.cast(pl.Float64, strict=False)
    if _numeric_kind(raw, floats, name, loc) == "numeric":
        return numeric_label(floats.to_numpy(), name, loc)
    vocabulary, codes = _vocabulary(values, name, settings, "label")
    _require_two_classes(vocabulary, name)
    return _Label(np.asarray(vocabulary, dtype=np.str_)[codes], Task.classification, vocabulary)


def _as_float(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def from_frame(
    frame: pl.DataFrame,
    *,
    fmt: DatasetFormat,
    label: str | None,
    loc: Locator,
    settings: Settings,
) -> ParsedDataset:
    """Shared by CSV and JSON records: a frame of string columns -> ParsedDataset.

    Memory: besides the frame, only the final float64 matrix is materialised; the per-column
    checks are aggregates, and a column is re-parsed only to locate an error.
    """
    columns = frame.columns
    label = _resolve_label(label, columns)
    check_counts(frame.height, len(columns) - 1, settings)
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
            kind = FeatureType.numeric
        features.names.append(name)
        features.types.append(kind)
        if kind == "numeric":
            features.numeric.append(name)
        else:
            vocabulary, codes = _vocabulary(
                frame[name].str.strip_chars(), name, settings, "categorical column"
            )
            features.categorical.append((name, vocabulary, codes))
    target = label_from_strings(frame[label], label, loc, settings)

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


def check_counts(n_rows: int, n_features: int, settings: Settings) -> None:
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
    check_feature_count(n_features, settings)


def check_feature_count(n_features: int, settings: Settings) -> None:
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


def check_names(names: list[str], where: str) -> list[str]:
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


def feature_names(given: Any, width: int) -> list[str]:
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
    return check_names(given, "feature_names")


def shape_mismatch(x_rows: int, y_rows: int) -> InvalidInput:
    return InvalidInput(
        f"X has {x_rows} rows, y has {y_rows}",
        {"X_rows": x_rows, "y_rows": y_rows},
        code="shape_mismatch",
    )


def numeric_dataset(
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
        feature_types=[FeatureType.numeric] * len(names),
        X_numeric=np.ascontiguousarray(x, dtype=np.float64),
        X_categorical=np.empty((x.shape[0], 0), dtype=np.int32),
        categories=[],
        y=target.y,
        label=label,
        task=target.task,
        classes=target.classes,
    )
