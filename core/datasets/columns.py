"""Columns to features and label: typing (numeric or categorical), vocabularies, checks of
counts, names and values, shared by every format that arrives as a table of strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.parsed import Deadline, Locator, ParsedDataset, excerpt
from core.errors import InvalidInput, PayloadTooLarge, quote
from models import infer_task
from models.vocabulary import FeatureType, Task
from store.tables import MAX_NAME_CHARS, DatasetFormat

# Longest categorical value or string label; bounds fixed-width string arrays.
MAX_CATEGORY_CHARS = 256
MIN_ROWS = 2
# Column names an error lists (a file may have 10,000).
_LISTED_COLUMNS = 20


@dataclass(frozen=True)
class _Label:
    y: NDArray[Any]
    task: Task
    classes: list[int] | list[str] | None


def _is_missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars().str.len_bytes() == 0)


def _as_float(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def _non_numeric(value: str, name: str, row: int, loc: Locator) -> InvalidInput:
    return InvalidInput(
        f"non-numeric value {quote(value)} in numeric column {quote(name)} {loc.describe(row)}",
        {"column": name, **loc.where(row), "value": excerpt(value), "expected": "number"},
        code="non_numeric_value",
    )


def _non_finite(value: str, name: str, row: int, loc: Locator) -> InvalidInput:
    return InvalidInput(
        f"non-finite value {quote(value)} in column {quote(name)} {loc.describe(row)}; "
        "NaN and infinity are not accepted (impute or drop missing values first)",
        {"column": name, **loc.where(row), "value": excerpt(value)},
        code="non_finite_value",
    )


def _numeric_kind(raw: pl.Series, floats: pl.Series, name: str, loc: Locator) -> FeatureType:
    """numeric if every value parses; a mostly-numeric column with a stray value is an error;
    a column of mostly non-numbers is categorical."""
    bad = floats.null_count()
    if bad == 0:
        finite = floats.is_finite()
        if not finite.all():
            row = int((~finite).arg_true()[0])
            raise _non_finite(str(raw[row]), name, row, loc)
        return FeatureType.numeric
    if 2 * bad < len(floats):
        row = int(floats.is_null().arg_true()[0])
        raise _non_numeric(str(raw[row]), name, row, loc)
    return FeatureType.categorical


def _column_kinds(
    frame: pl.DataFrame,
    features: list[str],
    x: NDArray[np.float64],
    lost: list[int],
    label: str,
    loc: Locator,
) -> tuple[list[FeatureType], list[str]]:
    """Each feature's type, and the numeric ones whose values need blanks stripped to parse.

    ``x`` holds every feature cast to float as it is (NaN where that failed); ``lost`` counts
    the values the cast lost. A column that lost no more than its nulls is plain numbers and
    costs nothing more. The rest (blank or padded values, text, errors: a few columns in
    practice) take the exact, stripping checks, still one pass over all of them at once.
    """
    raw_nulls = dict(zip(frame.columns, frame.null_count().row(0), strict=True))
    unsure = {c for c, n in zip(features, lost, strict=True) if n != raw_nulls[c]}
    _check_missing(
        frame, [c for c in frame.columns if c in unsure or raw_nulls[c] or c == label], loc
    )
    finite_columns: list[bool] = np.all(np.isfinite(x), axis=0).tolist()
    finite = dict(zip(features, finite_columns, strict=True))
    exact = [c for c in features if c in unsure]
    bad: dict[str, int] = {}
    if exact:
        counts = frame.select(
            *(_as_float(c).null_count().alias(f"bad{i}") for i, c in enumerate(exact)),
            *(_as_float(c).is_finite().all().alias(f"fin{i}") for i, c in enumerate(exact)),
        ).row(0)
        bad = dict(zip(exact, counts[: len(exact)], strict=True))
        finite.update(zip(exact, counts[len(exact) :], strict=True))
    kinds: list[FeatureType] = []
    for name in features:
        n_bad = bad.get(name, 0)
        if n_bad == 0 and finite[name]:
            kinds.append(FeatureType.numeric)
        elif 2 * n_bad >= frame.height:
            kinds.append(FeatureType.categorical)
        else:  # an error: locate it in this one column
            raw = frame.get_column(name)
            floats = raw.str.strip_chars().cast(pl.Float64, strict=False)
            kinds.append(_numeric_kind(raw, floats, name, loc))
    padded = [c for c, k in zip(features, kinds, strict=True) if k == "numeric" and c in unsure]
    return kinds, padded


def _check_missing(frame: pl.DataFrame, columns: list[str], loc: Locator) -> None:
    """The first missing value in row order among ``columns`` (the only ones that can have one)."""
    if not columns:
        return
    counts = frame.select(_is_missing(c).sum().alias(f"m{i}") for i, c in enumerate(columns))
    having = [c for c, n in zip(columns, counts.row(0), strict=True) if n]
    if not having:
        return
    flags = frame.select(_is_missing(c).alias(f"m{i}") for i, c in enumerate(having))
    row = int(flags.select(pl.any_horizontal(pl.all())).to_series().arg_true()[0])
    raise loc.missing_value(row, having[flags.row(row).index(True)])


def _vocabularies(
    frame: pl.DataFrame, names: list[str], settings: Settings
) -> tuple[list[list[str]], NDArray[np.int32]]:
    """Sorted vocabularies and int32 codes of the categorical columns, each step one pass over
    all of them."""
    if not names:
        return [], np.empty((frame.height, 0), dtype=np.int32)
    stripped = [pl.col(c).str.strip_chars() for c in names]
    counts = frame.select(
        *(s.n_unique().alias(f"distinct{i}") for i, s in enumerate(stripped)),
        *(s.str.len_chars().max().alias(f"longest{i}") for i, s in enumerate(stripped)),
    ).row(0)
    k = len(names)
    for name, distinct, longest in zip(names, counts[:k], counts[k:], strict=True):
        _check_vocabulary(name, int(distinct), int(longest or 0), settings, "categorical column")
    vocabularies: list[list[str]] = [
        list(v) for v in frame.select(s.unique().sort().implode() for s in stripped).row(0)
    ]
    codes = frame.select(
        s.cast(pl.Enum(v)).to_physical().cast(pl.Int32)
        for s, v in zip(stripped, vocabularies, strict=True)
    ).to_numpy(order="c")
    return vocabularies, codes


def _check_vocabulary(
    name: str, distinct: int, longest: int, settings: Settings, what: str
) -> None:
    if distinct > settings.max_categories:
        raise InvalidInput(
            f"{what} {quote(name)} has {distinct} distinct values; "
            f"at most {settings.max_categories} are supported",
            {"column": name, "distinct": distinct, "limit": settings.max_categories},
            code="too_many_categories",
        )
    if longest > MAX_CATEGORY_CHARS:
        raise InvalidInput(
            f"{what} {quote(name)} has a value of {longest} characters; "
            f"at most {MAX_CATEGORY_CHARS} are supported",
            {"column": name, "limit": MAX_CATEGORY_CHARS},
            code="value_too_long",
        )


def numeric_label(y: NDArray[np.float64], name: str, loc: Locator) -> _Label:
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
        _require_two_classes(classes, name)
        return _Label(y.astype(np.int64), Task.classification, classes)
    if len(distinct) < 2:
        raise InvalidInput(
            f"label {quote(name)} has a single value ({distinct[0]!r}); nothing to learn",
            {"column": name},
            code="single_class",
        )
    return _Label(y.astype(np.float64, copy=False), Task.regression, None)


def _require_two_classes(classes: list[int] | list[str], name: str) -> None:
    if len(classes) < 2:
        raise InvalidInput(
            f"label {quote(name)} has only one class ({quote(classes[0])}); "
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
    longest = values.str.len_chars().max()
    distinct = values.unique().sort()
    _check_vocabulary(
        name, len(distinct), int(longest) if isinstance(longest, int) else 0, settings, "label"
    )
    vocabulary: list[str] = distinct.to_list()
    _require_two_classes(vocabulary, name)
    codes = values.cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    return _Label(np.asarray(vocabulary, dtype=np.str_)[codes], Task.classification, vocabulary)


def from_frame(
    frame: pl.DataFrame,
    *,
    fmt: DatasetFormat,
    label: str | None,
    loc: Locator,
    settings: Settings,
    deadline: Deadline,
) -> ParsedDataset:
    """Shared by CSV and JSON records: a frame of string columns -> ParsedDataset.

    Every step is one vectorised pass over all the columns it concerns (Python loops only walk
    column names), so time is linear in the cells whatever the frame's shape. Memory: besides
    the text, the features as floats and then the float64 matrix.
    """
    columns = frame.columns
    label = resolve_label(label, columns)
    check_counts(frame.height, len(columns) - 1, settings)
    features = [c for c in columns if c != label]
    # Cast as is, without stripping blanks: the common case, and 3x cheaper (see _column_kinds).
    # Each polars expression costs ~20 us per column whatever the rows, so a wide frame gets as
    # few as possible: the cast, then numpy for the rest.
    floats = frame.select(pl.exclude(label).cast(pl.Float64, strict=False))
    lost = list(floats.null_count().row(0))
    x = floats.to_numpy(order="c")
    del floats
    deadline.check()
    kinds, padded = _column_kinds(frame, features, x, lost, label, loc)
    deadline.check()
    categorical = [c for c, k in zip(features, kinds, strict=True) if k != "numeric"]
    categories, x_cat = _vocabularies(frame, categorical, settings)
    deadline.check()
    target = label_from_strings(frame.get_column(label), label, loc, settings)
    if padded:
        where = [features.index(c) for c in padded]
        x[:, where] = frame.select(_as_float(c) for c in padded).to_numpy(order="c")
    if categorical:
        x = x[:, [j for j, k in enumerate(kinds) if k == "numeric"]]
    return ParsedDataset(
        format=fmt,
        feature_names=features,
        feature_types=kinds,
        X_numeric=np.ascontiguousarray(x, dtype=np.float64),
        X_categorical=x_cat,
        categories=categories,
        y=target.y,
        label=label,
        task=target.task,
        classes=target.classes,
    )


def resolve_label(label: str | None, columns: list[str]) -> str:
    if label is None:
        return columns[-1]
    if label not in columns:
        shown = columns[:_LISTED_COLUMNS]
        more = {"columns": len(columns)} if len(columns) > len(shown) else {}
        raise InvalidInput(
            f"label column {quote(label)} not found; available: {quote(columns)}",
            {"field": "label", "label": excerpt(label), "available": shown, **more},
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
                f"{where}: duplicate column name {quote(name)}",
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
            f"label name {quote(label)} is also a feature name",
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
