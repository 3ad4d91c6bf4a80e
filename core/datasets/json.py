"""JSON uploads: ``{"X": [[...]], "y": [...]}`` (optionally ``"feature_names"``) or
``{"records": [{...}], "label": "col"}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
from numpy.typing import NDArray

from core.config import Settings
from core.datasets.columns import (
    check_counts,
    check_names,
    feature_names,
    from_frame,
    numeric_dataset,
    shape_mismatch,
)
from core.datasets.labels import label_from_strings
from core.datasets.parsed import Deadline, Locator, ParsedDataset, RecordLocator, excerpt
from core.datasets.values import nulls_for_missing
from core.errors import InvalidInput, PayloadTooLarge, quote
from store.tables import DatasetFormat

# Records of a Python loop between two looks at the parse budget.
_CHECK_EVERY = 4096


class _Nested(Exception):
    """A list or object where a single value belongs; the caller names where."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise _Nested(value)


def _nested(where: str, value: Any) -> InvalidInput:
    return InvalidInput(
        f"{where}: nested values are not supported",
        {"value": excerpt(quote(value))},
        code="invalid_value",
    )


def parse_json(
    path: Path, *, label: str | None, settings: Settings, deadline: Deadline | None = None
) -> ParsedDataset:
    deadline = deadline or Deadline(settings.parse_budget_seconds)
    size = path.stat().st_size
    if size > settings.max_json_upload_bytes:
        raise PayloadTooLarge(
            f"JSON uploads are limited to {settings.max_json_upload_bytes} bytes; "
            "send large datasets as CSV or NPZ",
            {"limit_bytes": settings.max_json_upload_bytes, "size_bytes": size},
            code="upload_too_large",
        )
    try:
        data = orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"invalid JSON: {excerpt(str(exc))}", {}, code="invalid_json") from exc
    deadline.check()
    if isinstance(data, dict) and "records" in data:
        return _parse_records(data, label=label, settings=settings, deadline=deadline)
    if isinstance(data, dict) and "X" in data and "y" in data:
        return _parse_xy(data, label=label, settings=settings, deadline=deadline)
    raise InvalidInput(
        'expected a JSON object {"X": [[...]], "y": [...]} or '
        '{"records": [{...}], "label": "column"}',
        {},
        code="invalid_json_shape",
    )


def _unknown_keys(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(
            f"unknown top-level key(s) {quote(extra)}; allowed: {sorted(allowed)}",
            {"unknown": [excerpt(k) for k in extra[:20]]},
            code="invalid_json_shape",
        )


def _parse_records(
    data: dict[str, Any], *, label: str | None, settings: Settings, deadline: Deadline
) -> ParsedDataset:
    _unknown_keys(data, {"records", "label"})
    records = data["records"]
    if not isinstance(records, list) or not records:
        raise InvalidInput('"records" must be a non-empty list of objects', {}, code="no_rows")
    if not isinstance(records[0], dict):
        raise InvalidInput("record 0 is not an object", {"record": 0}, code="invalid_record")
    names = check_names([str(k) for k in records[0]], "records")
    check_counts(len(records), len(names) - 1, settings)
    keys = list(records[0])
    key_set = set(keys)
    columns: list[list[str | None]] = [[] for _ in names]
    for i, record in enumerate(records):
        if i % _CHECK_EVERY == 0:
            deadline.check()
        if not isinstance(record, dict):
            raise InvalidInput(f"record {i} is not an object", {"record": i}, code="invalid_record")
        if record.keys() != key_set:
            missing = sorted(key_set - record.keys())
            extra = sorted(set(record) - key_set)
            raise InvalidInput(
                f"record {i} has different columns from record 0 "
                f"(missing: {quote(missing)}, unexpected: {quote(extra)})",
                {
                    "record": i,
                    "missing": missing[:20],
                    "unexpected": [excerpt(k) for k in extra[:20]],
                },
                code="ragged_row",
            )
        for key, column in zip(keys, columns, strict=True):
            try:
                column.append(_stringify(record[key]))
            except _Nested as exc:
                where = f"record {i}, column {quote(names[keys.index(key)])}"
                raise _nested(where, exc.value) from None
    body_label = data.get("label")
    if body_label is not None and not isinstance(body_label, str):
        raise InvalidInput('"label" must be a string', {"field": "label"})
    frame = pl.DataFrame(
        dict(zip(names, columns, strict=True)), schema=dict.fromkeys(names, pl.String)
    )
    del columns
    deadline.check()
    return from_frame(
        nulls_for_missing(frame),
        fmt=DatasetFormat.json,
        label=label or body_label,
        loc=RecordLocator(),
        settings=settings,
        deadline=deadline,
    )


def _parse_xy(
    data: dict[str, Any], *, label: str | None, settings: Settings, deadline: Deadline
) -> ParsedDataset:
    _unknown_keys(data, {"X", "y", "feature_names"})
    X, y = data["X"], data["y"]
    if not isinstance(X, list) or not isinstance(y, list):
        raise InvalidInput('"X" and "y" must be lists', {}, code="invalid_json_shape")
    x = _json_matrix(X, deadline)
    if x.shape[0] != len(y):
        raise shape_mismatch(x.shape[0], len(y))
    names = feature_names(data.get("feature_names"), x.shape[1])
    label = label or "y"
    check_counts(x.shape[0], x.shape[1], settings)
    deadline.check()
    strings: list[str | None] = []
    for i, value in enumerate(y):
        if i % _CHECK_EVERY == 0:
            deadline.check()
        try:
            strings.append(_stringify(value))
        except _Nested as exc:
            raise _nested(f"y[{i}]", exc.value) from None
    values = pl.Series("y", strings, dtype=pl.String)
    target = label_from_strings(values, label, Locator(), settings)
    return numeric_dataset(DatasetFormat.json, x, names, label, target)


def _json_matrix(X: list[Any], deadline: Deadline) -> NDArray[np.float64]:
    if not X:
        raise InvalidInput("the dataset has no data rows", {"rows": 0}, code="no_rows")
    try:
        arr = np.array(X)
    except (ValueError, TypeError):
        arr = np.empty(0, dtype=object)
    if arr.ndim == 2 and arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    deadline.check()
    # Slow path, only for bad input: find the first offending row or value.
    width = len(X[0]) if isinstance(X[0], list) else -1
    for i, row in enumerate(X):
        if i % _CHECK_EVERY == 0:
            deadline.check()
        if not isinstance(row, list):
            raise InvalidInput(f"X[{i}] is not a list", {"row": i}, code="invalid_value")
        if len(row) != width:
            raise InvalidInput(
                f"X[{i}] has {len(row)} values; X[0] has {width}",
                {"row": i, "values": len(row), "expected": width},
                code="ragged_row",
            )
        for j, value in enumerate(row):
            if value is None:  # a missing value: NaN
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"X[{i}][{j}] = {quote(value)} is not a number",
                    {
                        "row": i,
                        "column": j,
                        "value": excerpt(value if isinstance(value, str) else quote(value)),
                        "expected": "number",
                    },
                    code="non_numeric_value",
                )
    try:  # integers too large for int64 but still numbers
        return np.array(X, dtype=np.float64)
    except OverflowError as exc:
        raise InvalidInput(
            f"X has a number out of range: {excerpt(str(exc))}", {}, code="non_finite_value"
        ) from exc
