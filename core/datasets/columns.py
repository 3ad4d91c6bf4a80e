"""Columns to features and label: typing (numeric or categorical), vocabularies, checks of
counts, names and values, shared by every format that arrives as a table of strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.labels import Label, label_from_strings
from core.datasets.parsed import Deadline, Locator, ParsedDataset, excerpt
from core.datasets.values import (
    as_float,
    check_vocabulary,
    is_missing,
    numeric_kind,
)
from core.errors import InvalidInput, PayloadTooLarge, quote
from models.vocabulary import FeatureType
from store.tables import MAX_NAME_CHARS, DatasetFormat

MIN_ROWS = 2
# Column names an error lists (a file may have 10,000).
_LISTED_COLUMNS = 20


def _not_numbers(column: str) -> pl.Expr:
    return as_float(column).is_null() & ~is_missing(column)


def _column_kinds(
    frame: pl.DataFrame,
    features: list[str],
    x: NDArray[np.float64],
    lost: list[int],
    loc: Locator,
) -> tuple[list[FeatureType], list[str]]:
    """Each feature's type, and the numeric ones whose values need blanks stripped to parse.

    ``frame`` has its exact missing tokens as nulls already; ``x`` holds every feature cast to
    float as it is (NaN where that failed); ``lost`` counts the values the cast lost. A column
    that lost no more than its nulls is plain numbers (and missing values) and costs nothing
    more. The rest (padded values, text, errors: a few columns in practice) take the exact,
    stripping checks, still one pass over all of them at once.
    """
    raw_nulls = dict(zip(frame.columns, frame.null_count().row(0), strict=True))
    unsure = {c for c, n in zip(features, lost, strict=True) if n != raw_nulls[c]}
    infinite_columns = [bool(v) for v in np.asarray(np.isinf(x).any(axis=0)).ravel()]
    finite = {c: not inf for c, inf in zip(features, infinite_columns, strict=True)}
    exact = [c for c in features if c in unsure]
    bad: dict[str, int] = {}
    present = {c: frame.height - raw_nulls[c] for c in features}
    if exact:
        counts = frame.select(
            *(
                (as_float(c).is_null() & ~is_missing(c)).sum().alias(f"b{i}")
                for i, c in enumerate(exact)
            ),
            *((~is_missing(c)).sum().alias(f"p{i}") for i, c in enumerate(exact)),
            *((~as_float(c).is_infinite()).all().alias(f"f{i}") for i, c in enumerate(exact)),
        ).row(0)
        k = len(exact)
        bad = dict(zip(exact, counts[:k], strict=True))
        present.update(zip(exact, counts[k : 2 * k], strict=True))
        finite.update(zip(exact, counts[2 * k :], strict=True))
    kinds: list[FeatureType] = []
    for name in features:
        n_bad = bad.get(name, 0)
        if n_bad == 0 and finite[name]:
            kinds.append(FeatureType.numeric)
        elif 2 * n_bad >= present[name] and n_bad > 0:
            kinds.append(FeatureType.categorical)
        else:  # an error: locate it in this one column
            kinds.append(numeric_kind(frame.get_column(name), name, loc))
    padded = [c for c, k in zip(features, kinds, strict=True) if k == "numeric" and c in unsure]
    return kinds, padded


def _vocabularies(
    frame: pl.DataFrame, names: list[str], settings: Settings
) -> tuple[list[list[str]], NDArray[np.int32]]:
    """Sorted vocabularies and int32 codes (-1: missing) of the categorical columns, each step
    one pass over all of them."""
    if not names:
        return [], np.empty((frame.height, 0), dtype=np.int32)
    stripped = [
        pl.when(is_missing(c)).then(None).otherwise(pl.col(c).str.strip_chars()).alias(c)
        for c in names
    ]
    values = frame.select(stripped)
    counts = values.select(
        *(pl.col(c).drop_nulls().n_unique().alias(f"distinct{i}") for i, c in enumerate(names)),
        *(pl.col(c).str.len_chars().max().alias(f"longest{i}") for i, c in enumerate(names)),
    ).row(0)
    k = len(names)
    for name, distinct, longest in zip(names, counts[:k], counts[k:], strict=True):
        check_vocabulary(name, int(distinct), int(longest or 0), settings, "categorical column")
    vocabularies: list[list[str]] = [
        list(v)
        for v in values.select(pl.col(c).drop_nulls().unique().sort().implode() for c in names).row(
            0
        )
    ]
    codes = values.select(
        pl.col(c).cast(pl.Enum(v)).to_physical().cast(pl.Int32).fill_null(-1)
        for c, v in zip(names, vocabularies, strict=True)
    ).to_numpy(order="c")
    return vocabularies, codes


def from_frame(
    frame: pl.DataFrame,
    *,
    fmt: DatasetFormat,
    label: str | None,
    loc: Locator,
    settings: Settings,
    deadline: Deadline,
) -> ParsedDataset:
    """Shared by CSV and JSON records: a frame of string columns -> ParsedDataset. The frame's
    missing tokens ("NA", "null", ... as written: padded ones are found by the exact checks)
    are nulls already (``values.nulls_for_missing``, or the CSV reader's ``null_values``).

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
    kinds, padded = _column_kinds(frame, features, x, lost, loc)
    deadline.check()
    categorical = [c for c, k in zip(features, kinds, strict=True) if k != "numeric"]
    categories, x_cat = _vocabularies(frame, categorical, settings)
    deadline.check()
    target = label_from_strings(frame.get_column(label), label, loc, settings)
    if padded:
        where = [features.index(c) for c in padded]
        x[:, where] = frame.select(as_float(c) for c in padded).to_numpy(order="c")
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
    fmt: DatasetFormat, x: NDArray[np.floating[Any]], names: list[str], label: str, target: Label
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
        # float32 stays float32 (the CSV reader's exact compact form); anything else float64.
        X_numeric=np.ascontiguousarray(
            x, dtype=np.float32 if x.dtype == np.float32 else np.float64
        ),
        X_categorical=np.empty((x.shape[0], 0), dtype=np.int32),
        categories=[],
        y=target.y,
        label=label,
        task=target.task,
        classes=target.classes,
    )
