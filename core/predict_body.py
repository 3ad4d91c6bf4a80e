"""Predict request bodies: JSON parsed with orjson straight into numpy, in the model's feature
order (no per-value pydantic validation); a 4xx names the row and column of a bad value. null,
and the bare literal NaN, are missing values; Infinity is refused by name."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from core.config import Settings
from core.errors import BadRequest, InvalidInput, PayloadTooLarge, cut, quote
from models import Model as LoadedModel

INPUT_KEYS = ("inputs", "records", "dataframe_split", "dataframe_records", "instances")


def _invalid(message: str, field: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, {"field": field, **details}, code="invalid_input")


def _check_rows(n: int, settings: Settings, field: str) -> None:
    if n == 0:
        raise _invalid("no rows to predict", field)
    if n > settings.max_predict_rows:
        raise PayloadTooLarge(
            f"{n} rows is more than the limit of {settings.max_predict_rows} per request",
            {"field": field, "rows": n, "limit": settings.max_predict_rows},
            code="too_many_rows",
        )


def _matrix(rows: Any, model: LoadedModel, field: str) -> NDArray[Any]:
    """A list of rows (lists) -> a 2-D array in the model's feature order."""
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _invalid(f"{field} must be a list of rows (lists of values)", field)
    width = model.n_features
    for i, row in enumerate(rows):
        if len(row) != width:
            raise _invalid(
                f"expected {width} features, got {len(row)} (row {i})",
                field,
                row=i,
                expected=width,
                got=len(row),
            )
    if "categorical" not in model.feature_types:
        try:
            X = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            return _first_bad_number(rows, field)
        if X.ndim != 2:
            raise _invalid(f"{field} must be a 2-D table of numbers", field)
        # null is a missing value (NaN), imputed as in training; infinity is refused.
        bad = ~np.isfinite(X) if _refuses_missing(model) else np.isinf(X)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise _invalid(
                f"{_what(X[i, j], model)} in row {i}, feature {model.feature_names[j]!r}",
                field,
                row=int(i),
                column=model.feature_names[j],
            )
        return X
    X = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        X[i, :] = row
    return _mixed(X, model, field)


def _refuses_missing(model: LoadedModel) -> bool:
    return model.preprocessor.impute == "none"


def _what(value: float, model: LoadedModel) -> str:
    if math.isnan(value):
        return "a missing value (the model was trained with preprocessing.impute 'none')"
    return "a non-finite value"


def _first_bad_number(rows: list[list[Any]], field: str) -> NDArray[Any]:
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(
                    f"row {i}, feature {j}: expected a number, got {quote(value)}",
                    field,
                    row=i,
                    column=j,
                )
    raise _invalid(f"{field} must be a table of numbers", field)


def _mixed(X: NDArray[Any], model: LoadedModel, field: str) -> NDArray[Any]:
    """Check an object table: numbers in numeric columns, strings (or numbers) elsewhere."""
    for j, (name, kind) in enumerate(zip(model.feature_names, model.feature_types, strict=True)):
        column = X[:, j]
        for i, value in enumerate(column):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                if _refuses_missing(model):
                    raise _invalid(
                        f"{_what(math.nan, model)} in row {i}, feature {name!r}",
                        field,
                        row=i,
                        column=name,
                    )
                X[i, j] = None
            elif kind == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise _invalid(
                        f"row {i}, feature {name!r}: expected a number, got {quote(value)}",
                        field,
                        row=i,
                        column=name,
                    )
                if not math.isfinite(value):
                    raise _invalid(
                        f"non-finite value in row {i}, feature {name!r}", field, row=i, column=name
                    )
            elif not isinstance(value, str):
                X[i, j] = str(value)
    return X


def _from_records(records: Any, model: LoadedModel, field: str) -> NDArray[Any]:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _invalid(f"{field} must be a list of objects keyed by feature name", field)
    names = model.feature_names
    known = set(names)
    rows: list[list[Any]] = []
    for i, record in enumerate(records):
        missing = [n for n in names if n not in record]
        if missing:
            raise _invalid(
                f"record {i} is missing feature {missing[0]!r}", field, row=i, column=missing[0]
            )
        if len(record) != len(names):
            unknown = next(k for k in record if k not in known)
            raise _invalid(
                f"unknown column {quote(unknown)} in record {i}", field, row=i, column=cut(unknown)
            )
        rows.append([record[n] for n in names])
    return _matrix(rows, model, field)


def _from_split(split: Any, model: LoadedModel, field: str) -> NDArray[Any]:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise _invalid(f"{field} must be {{'columns': [...], 'data': [[...]]}}", field)
    columns = split.get("columns")
    data = split["data"]
    if columns is None:
        return _matrix(data, model, field)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _invalid(f"{field}.columns must be a list of names", f"{field}.columns")
    names = model.feature_names
    unknown = [c for c in columns if c not in set(names)]
    if unknown:
        raise _invalid(
            f"unknown column {quote(unknown[0])}", f"{field}.columns", column=cut(str(unknown[0]))
        )
    missing = [n for n in names if n not in set(columns)]
    if missing:
        raise _invalid(f"missing column {missing[0]!r}", f"{field}.columns", column=missing[0])
    if len(set(columns)) != len(columns):
        raise _invalid("duplicate column names", f"{field}.columns")
    if columns == names:
        return _matrix(data, model, field)
    X = _matrix_any_width(data, len(columns), field)
    order = [columns.index(n) for n in names]
    return _matrix([[row[k] for k in order] for row in X], model, field)


def _matrix_any_width(data: Any, width: int, field: str) -> list[list[Any]]:
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise _invalid(f"{field}.data must be a list of rows", f"{field}.data")
    for i, row in enumerate(data):
        if len(row) != width:
            raise _invalid(
                f"expected {width} values (one per column), got {len(row)} (row {i})",
                f"{field}.data",
                row=i,
            )
    return data


def _constant(name: str) -> float | None:
    """``NaN`` (what pandas and numpy write) is a missing value, like null; ``Infinity`` stays
    a float so the row and column checks refuse it by name (422)."""
    return None if name == "NaN" else float(name)


def _loads(body: bytes) -> Any:
    """orjson, strict JSON; a body it refuses that holds the bare literals ``NaN`` or
    ``Infinity`` (not JSON, but what Python's json and JavaScript write) is read again by the
    standard library parser, which takes them (its size is bounded by the caller)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    if b"NaN" in body or b"Infinity" in body:
        try:
            return json.loads(body, parse_constant=_constant)
        except (ValueError, RecursionError):
            pass  # malformed for another reason: orjson's message says where
    raise BadRequest(f"malformed JSON: {error}", code="malformed_json") from None


def parse_predict_body(body: bytes, model: LoadedModel, settings: Settings) -> NDArray[Any]:
    """Raw JSON body -> the feature table in the model's order. 400 malformed JSON, 413 too
    many rows, 422 for content that does not fit the model (naming row / column)."""
    if len(body) > settings.max_predict_body_bytes:
        raise PayloadTooLarge(
            f"request body over {settings.max_predict_body_bytes} bytes",
            {"limit": settings.max_predict_body_bytes},
        )
    data = _loads(body)
    if not isinstance(data, dict):
        raise _invalid("the body must be a JSON object", "body")
    given = [k for k in INPUT_KEYS if k in data]
    if len(given) != 1:
        raise _invalid(f"give exactly one of {', '.join(INPUT_KEYS)}", "body", found=given)
    extra = [k for k in data if k not in INPUT_KEYS]
    if extra:
        raise _invalid(f"unknown field {quote(extra[0])}", cut(extra[0]))
    key = given[0]
    payload = data[key]
    n = (
        len(payload["data"])
        if key == "dataframe_split"
        and isinstance(payload, dict)
        and isinstance(payload.get("data"), list)
        else (len(payload) if isinstance(payload, list) else -1)
    )
    if n >= 0:
        _check_rows(n, settings, key)
    if key == "inputs":
        return _matrix(payload, model, key)
    if key in ("records", "dataframe_records"):
        return _from_records(payload, model, key)
    if key == "dataframe_split":
        return _from_split(payload, model, key)
    # instances: rows as lists, or records as objects (TF-serving style).
    if isinstance(payload, list) and payload and all(isinstance(r, dict) for r in payload):
        return _from_records(payload, model, key)
    return _matrix(payload, model, key)
