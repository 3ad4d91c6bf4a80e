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
    label_from_strings,
    numeric_dataset,
    shape_mismatch,
)
from core.datasets.parsed import Locator, ParsedDataset, RecordLocator
from core.errors import InvalidInput, PayloadTooLarge
from store.tables import DatasetFormat


def _stringify(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise InvalidInput(
        f"{where}: nested values are not supported",
        {"value": str(value)[:100]},
        code="invalid_value",
    )


def parse_json(path: Path, *, label: str | None, settings: Settings) -> ParsedDataset:
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
        raise InvalidInput(f"invalid JSON: {exc}", {}, code="invalid_json") from exc
    if isinstance(data, dict) and "records" in data:
        return _parse_records(data, label=label, settings=settings)
    if isinstance(data, dict) and "X" in data and "y" in data:
        return _parse_xy(data, label=label, settings=settings)
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
            f"unknown top-level key(s) {extra}; allowed: {sorted(allowed)}",
            {"unknown": extra},
            code="invalid_json_shape",
        )


def _parse_records(data: dict[str, Any], *, label: str | None, settings: Settings) -> ParsedDataset:
    _unknown_keys(data, {"records", "label"})
    records = data["records"]
    if not isinstance(records, list) or not records:
        raise InvalidInput('"records" must be a non-empty list of objects', {}, code="no_rows")
    if not isinstance(records[0], dict):
        raise InvalidInput("record 0 is not an object", {"record": 0}, code="invalid_record")
    names = check_names([str(k) for k in records[0]], "records")
    keys = list(records[0])
    key_set = set(keys)
    columns: dict[str, list[str | None]] = {n: [] for n in names}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"record {i} is not an object", {"record": i}, code="invalid_record")
        if record.keys() != key_set:
            missing = sorted(key_set - record.keys())
            extra = sorted(set(record) - key_set)
            raise InvalidInput(
                f"record {i} has different columns from record 0 "
                f"(missing: {missing}, unexpected: {extra})",
                {"record": i, "missing": missing, "unexpected": extra},
                code="ragged_row",
            )
        for key, name in zip(keys, names, strict=True):
            columns[name].append(_stringify(record[key], f"record {i}, column {name!r}"))
    body_label = data.get("label")
    if body_label is not None and not isinstance(body_label, str):
        raise InvalidInput('"label" must be a string', {"field": "label"})
    frame = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
    return from_frame(
        frame,
        fmt=DatasetFormat.json,
        label=label or body_label,
        loc=RecordLocator(),
        settings=settings,
    )


def _parse_xy(data: dict[str, Any], *, label: str | None, settings: Settings) -> ParsedDataset:
    _unknown_keys(data, {"X", "y", "feature_names"})
    X, y = data["X"], data["y"]
    if not isinstance(X, list) or not isinstance(y, list):
        raise InvalidInput('"X" and "y" must be lists', {}, code="invalid_json_shape")
    x = _json_matrix(X)
    if x.shape[0] != len(y):
        raise shape_mismatch(x.shape[0], len(y))
    names = feature_names(data.get("feature_names"), x.shape[1])
    label = label or "y"
    check_counts(x.shape[0], x.shape[1], settings)
    values = pl.Series("y", [_stringify(v, f"y[{i}]") for i, v in enumerate(y)], dtype=pl.String)
    target = label_from_strings(values, label, Locator(), settings)
    return numeric_dataset(DatasetFormat.json, x, names, label, target)


def _json_matrix(X: list[Any]) -> NDArray[np.float64]:
    if not X:
        raise InvalidInput("the dataset has no data rows", {"rows": 0}, code="no_rows")
    try:
        arr = np.array(X)
    except (ValueError, TypeError):
        arr = np.empty(0, dtype=object)
    if arr.ndim == 2 and arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    # Slow path, only for bad input: find the first offending row or value.
    width = len(X[0]) if isinstance(X[0], list) else -1
    for i, row in enumerate(X):
        if not isinstance(row, list):
            raise InvalidInput(f"X[{i}] is not a list", {"row": i}, code="invalid_value")
        if len(row) != width:
            raise InvalidInput(
                f"X[{i}] has {len(row)} values; X[0] has {width}",
                {"row": i, "values": len(row), "expected": width},
                code="ragged_row",
            )
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"X[{i}][{j}] = {value!r} is not a number",
                    {"row": i, "column": j, "value": str(value)[:100], "expected": "number"},
                    code="non_numeric_value",
                )
    try:  # integers too large for int64 but still numbers
        return np.array(X, dtype=np.float64)
    except OverflowError as exc:
        raise InvalidInput(
            f"X has a number out of range: {exc}", {}, code="non_finite_value"
        ) from exc
