"""Parquet uploads, read by polars. Every column goes through the same typing and checks as a
CSV's (columns.from_frame), so a Parquet file gets the same errors and limits; a row is named
by its 0-based index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

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
from core.errors import InvalidInput
from store.tables import DatasetFormat


class RowLocator(Locator):
    key = "row"


def parse_parquet(
    path: Path, *, label: str | None, settings: Settings, deadline: Deadline
) -> ParsedDataset:
    try:
        # Shape from the footer first: a file over the limits is refused before it is read.
        schema = pl.read_parquet_schema(path)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(exc) from exc
    names = check_names(list(schema), "Parquet schema")
    check_counts(int(rows), len(names) - 1, settings)
    deadline.check()
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(exc) from exc
    nested = [c for c, t in frame.schema.items() if t.is_nested()]
    if nested:
        raise InvalidInput(
            f"column {nested[0]!r} holds lists or structs; every column must hold single values",
            {"column": nested[0]},
            code="nested_value",
        )
    deadline.check()
    frame.columns = names
    label_name = resolve_label(label, names)
    features = [n for n in names if n != label_name]
    if all(frame.schema[n].is_numeric() for n in features):
        # Typed numbers need no parsing: straight to float64 (nulls become NaN, missing).
        x = frame.select(pl.col(features).cast(pl.Float64)).to_numpy(order="c")
        if np.isinf(x).any():
            row, col = (int(v) for v in np.argwhere(np.isinf(x))[0])
            raise non_finite(str(x[row, col]), features[col], row, RowLocator())
        raw = frame.get_column(label_name).cast(pl.String)
        target = label_from_strings(raw, label_name, RowLocator(), settings)
        return numeric_dataset(DatasetFormat.parquet, x, features, label_name, target)
    # As text, the way a CSV arrives: one set of rules for typing, missing values and errors.
    text = nulls_for_missing(frame.select(pl.all().cast(pl.String)))
    return from_frame(
        text, fmt=DatasetFormat.parquet, label=label, loc=RowLocator(), settings=settings,
        deadline=deadline,
    )  # fmt: skip


def _unreadable(exc: Exception) -> InvalidInput:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InvalidInput(
        f"could not read the Parquet file: {excerpt(first)}", {}, code="invalid_parquet"
    )
