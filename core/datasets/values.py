"""Single values in a table of strings: what counts as missing, what parses as a number, and
the errors that name a bad one (column, line or record, and the value)."""

from __future__ import annotations

import polars as pl

from core.config import Settings
from core.datasets.parsed import Locator, excerpt
from core.errors import InvalidInput, quote
from models.vocabulary import FeatureType

# Longest categorical value or string label; bounds fixed-width string arrays.
MAX_CATEGORY_CHARS = 256
# What people (and pandas, R, spreadsheets, databases) write for "no value"; an empty cell too.
MISSING_TOKENS = ("", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null",
                  "None", "<NA>")  # fmt: skip


def nulls_for_missing(frame: pl.DataFrame) -> pl.DataFrame:
    """Missing tokens as written become nulls (the CSV reader does it itself, for free)."""
    return frame.with_columns(pl.all().replace(MISSING_TOKENS, None))


def is_missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | pl.col(column).str.strip_chars().is_in(MISSING_TOKENS)


def as_float(column: str) -> pl.Expr:
    """The column's numbers, blanks stripped; null where a value is missing or not a number."""
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def non_numeric(value: str, name: str, row: int, loc: Locator) -> InvalidInput:
    return InvalidInput(
        f"non-numeric value {quote(value)} in numeric column {quote(name)} {loc.describe(row)}",
        {"column": name, **loc.where(row), "value": excerpt(value), "expected": "number"},
        code="non_numeric_value",
    )


def non_finite(value: str, name: str, row: int, loc: Locator) -> InvalidInput:
    return InvalidInput(
        f"non-finite value {quote(value)} in column {quote(name)} {loc.describe(row)}; "
        "infinity is not accepted (a missing value may be left empty or written NA)",
        {"column": name, **loc.where(row), "value": excerpt(value)},
        code="non_finite_value",
    )


def numeric_kind(raw: pl.Series, name: str, loc: Locator) -> FeatureType:
    """numeric if every value present parses; a mostly-numeric column with a stray value is an
    error; a column of mostly non-numbers is categorical. Missing values count for neither."""
    frame = raw.to_frame("v")
    missing = frame.select(is_missing("v")).to_series()
    floats = frame.select(as_float("v")).to_series()
    not_numbers = floats.is_null() & ~missing
    bad = int(not_numbers.sum())
    if bad == 0:
        infinite = floats.is_infinite().fill_null(False)
        if infinite.any():
            row = int(infinite.arg_true()[0])
            raise non_finite(str(raw[row]), name, row, loc)
        return FeatureType.numeric
    present = len(raw) - int(missing.sum())
    if 2 * bad < present:
        row = int(not_numbers.arg_true()[0])
        raise non_numeric(str(raw[row]), name, row, loc)
    return FeatureType.categorical


def check_vocabulary(name: str, distinct: int, longest: int, settings: Settings, what: str) -> None:
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
