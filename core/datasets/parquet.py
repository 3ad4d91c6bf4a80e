"""Parquet uploads, read by polars. Typed numeric columns go straight to float64; every other
column goes through the same typing and checks as a CSV's (columns.from_frame), so a Parquet
file gets the same errors and limits; a row is named by its 0-based index.

The footer is read first: the row and column counts, and the size they decode to (8 bytes a
value, as float64), are checked before any data is, so a few-MB file of constant columns (run
length encoded to almost nothing) cannot decode to gigabytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.columns import (
    check_counts,
    check_names,
    from_frame,
    numeric_dataset,
    resolve_label,
)
from core.datasets.labels import label_from_strings
from core.datasets.parsed import Deadline, Locator, ParsedDataset, excerpt
from core.datasets.values import non_finite, nulls_for_missing
from core.errors import InvalidInput, PayloadTooLarge
from models.vocabulary import FeatureType
from store.tables import DatasetFormat

# Bytes a value takes once decoded (float64; a categorical code is less, text about as much).
DECODED_VALUE_BYTES = 8


class RowLocator(Locator):
    key = "row"


def parse_parquet(
    path: Path, *, label: str | None, settings: Settings, deadline: Deadline
) -> ParsedDataset:
    try:
        # Shape from the footer first: a file over the limits is refused before it is read.
        schema = pl.read_parquet_schema(path)
        rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(exc) from exc
    names = check_names(list(schema), "Parquet schema")
    check_counts(rows, len(names) - 1, settings)
    check_decoded_size(rows, len(names), settings)
    nested = [c for c, t in zip(names, schema.values(), strict=True) if t.is_nested()]
    if nested:
        raise InvalidInput(
            f"column {nested[0]!r} holds lists or structs; every column must hold single values",
            {"column": nested[0]},
            code="nested_value",
        )
    deadline.check()
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(exc) from exc
    deadline.check()
    frame.columns = names
    label_name = resolve_label(label, names)
    features = [n for n in names if n != label_name]
    typed = [n for n in features if frame.schema[n].is_numeric()]
    # Typed numbers need no parsing: straight to float64 (nulls become NaN, missing).
    x_typed = _typed_numbers(frame, typed)
    if len(typed) == len(features):
        raw = frame.get_column(label_name).cast(pl.String)
        target = label_from_strings(raw, label_name, RowLocator(), settings)
        return numeric_dataset(DatasetFormat.parquet, x_typed, features, label_name, target)
    # The other columns as text, the way a CSV arrives: one set of rules for typing, missing
    # values and errors. Only they (and the label) are cast: typed numbers never become text.
    others = [n for n in features if n not in set(typed)]
    text = nulls_for_missing(frame.select(pl.col(*others, label_name).cast(pl.String)))
    del frame
    parsed = from_frame(
        text, fmt=DatasetFormat.parquet, label=label_name, loc=RowLocator(), settings=settings,
        deadline=deadline,
    )  # fmt: skip
    return _merged(parsed, features, typed, x_typed)


def check_decoded_size(rows: int, columns: int, settings: Settings) -> None:
    decoded = rows * columns * DECODED_VALUE_BYTES
    if decoded > settings.max_decompressed_bytes:
        raise PayloadTooLarge(
            f"the Parquet file holds {rows} rows x {columns} columns, {decoded} bytes decoded; "
            f"the limit is {settings.max_decompressed_bytes} bytes (setting "
            "max_decompressed_bytes)",
            {
                "rows": rows,
                "columns": columns,
                "decoded_bytes": decoded,
                "limit_bytes": settings.max_decompressed_bytes,
            },
            code="dataset_too_large",
        )


def _typed_numbers(frame: pl.DataFrame, names: list[str]) -> NDArray[np.float64]:
    if not names:
        return np.empty((frame.height, 0), dtype=np.float64)
    x = frame.select(pl.col(names).cast(pl.Float64)).to_numpy(order="c")
    infinite = np.isinf(x)
    if infinite.any():
        row, col = (int(v) for v in np.argwhere(infinite)[0])
        raise non_finite(str(x[row, col]), names[col], row, RowLocator())
    return np.ascontiguousarray(x, dtype=np.float64)


def _merged(
    parsed: ParsedDataset, features: list[str], typed: list[str], x_typed: NDArray[np.float64]
) -> ParsedDataset:
    """``parsed`` (the text columns) with the typed numeric columns put back in file order."""
    typed_at = {n: j for j, n in enumerate(typed)}
    kind_of = dict(zip(parsed.feature_names, parsed.feature_types, strict=True))
    text_numeric = [n for n in parsed.feature_names if kind_of[n] == FeatureType.numeric]
    text_at = {n: j for j, n in enumerate(text_numeric)}
    kinds = [FeatureType.numeric if n in typed_at else kind_of[n] for n in features]
    numeric = [n for n, k in zip(features, kinds, strict=True) if k == FeatureType.numeric]
    x = np.empty((parsed.n_rows, len(numeric)), dtype=np.float64)
    for j, name in enumerate(numeric):
        x[:, j] = (
            x_typed[:, typed_at[name]] if name in typed_at else parsed.X_numeric[:, text_at[name]]
        )
    return dataclasses.replace(parsed, feature_names=features, feature_types=kinds, X_numeric=x)


def _unreadable(exc: Exception) -> InvalidInput:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InvalidInput(
        f"could not read the Parquet file: {excerpt(first)}", {}, code="invalid_parquet"
    )
