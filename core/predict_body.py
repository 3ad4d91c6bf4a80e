"""Predict request bodies: JSON parsed with orjson straight into numpy, in the model's feature
order (no per-value pydantic validation); a 4xx names the row and column of a bad value. null,
and the bare literal NaN, are missing values; Infinity is refused by name.

A body over ``core.predict_tables.THRESHOLD`` holding a table of a numeric model is read in
pieces (see that module): about the matrix plus a few MiB, where orjson on the whole body costs
~13x the body. The checks and messages are the same (tests/core/test_predict_body.py compares
both ways on each case); when a large body has several faults the one named may differ (the
first array or object nested in a row is named before the widths of the rows after it)."""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from core.config import Settings
from core.errors import BadRequest, InvalidInput, PayloadTooLarge, cut, quote
from core.predict_tables import PIECE, PLACEHOLDER, PLACEHOLDER_TEXT, THRESHOLD, Table, find_table
from models import Model as LoadedModel

# The most of a body read to quote an array or object found inside a row.
_WINDOW = 64 * 1024

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
    if model.numeric_only:
        try:
            X = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            return _first_bad_number(rows, field)
        if X.ndim != 2:
            raise _invalid(f"{field} must be a 2-D table of numbers", field)
        _refuse_nonfinite(X, model, field)
        return X
    X = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        X[i, :] = row
    return _mixed(X, model, field)


def _refuse_nonfinite(X: NDArray[Any], model: LoadedModel, field: str) -> None:
    """null is a missing value (NaN), imputed as in training; infinity is refused."""
    if np.isfinite(X).all():  # the common table: no search
        return
    bad = ~np.isfinite(X) if _refuses_missing(model) else np.isinf(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise _invalid(
            f"{_what(X[i, j], model)} in row {i}, feature {model.feature_names[j]!r}",
            field,
            row=int(i),
            column=model.feature_names[j],
        )


def _refuses_missing(model: LoadedModel) -> bool:
    return model.preprocessor.impute == "none"


def _what(value: float, model: LoadedModel) -> str:
    if math.isnan(value):
        return "a missing value (the model was trained with preprocessing.impute 'none')"
    return "a non-finite value"


def _first_bad_number(rows: list[list[Any]], field: str, first: int = 0) -> NDArray[Any]:
    for i, row in enumerate(rows, first):
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


def _from_split(
    split: Any, model: LoadedModel, field: str, table: Table | None = None
) -> NDArray[Any]:
    """``table``: the rows of ``data``, when the body was read in pieces."""
    if not isinstance(split, dict) or not (
        table is not None or isinstance(split.get("data"), list)
    ):
        raise _invalid(f"{field} must be {{'columns': [...], 'data': [[...]]}}", field)
    columns = split.get("columns")
    data = split["data"]
    if columns is None:
        return _matrix(data, model, field) if table is None else _table_matrix(table, model, field)
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
        return _matrix(data, model, field) if table is None else _table_matrix(table, model, field)
    order = [columns.index(n) for n in names]
    if table is not None:
        return _table_matrix(table, model, field, order)
    X = _matrix_any_width(data, len(columns), field)
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


def _loads(text: bytes, where: Callable[[int], int] | None = None, body: bytes = b"") -> Any:
    """orjson, strict JSON; a text it refuses that holds the bare literals ``NaN`` or
    ``Infinity`` (not JSON, but what Python's json and JavaScript write) is read again by the
    standard library parser, which takes them (its size is bounded by the caller). ``text`` is
    the whole body, or (``where``: its positions in ``body``) a part of one."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        error = exc
    if b"NaN" in text or b"Infinity" in text:
        try:
            return json.loads(text, parse_constant=_constant)
        except (ValueError, RecursionError):
            pass  # malformed for another reason: orjson's message says where
    if where is None:
        raise BadRequest(f"malformed JSON: {error}", code="malformed_json") from None
    at = min(max(where(error.pos), 0), len(body))
    line, column = body.count(b"\n", 0, at) + 1, at - body.rfind(b"\n", 0, at)
    raise BadRequest(
        f"malformed JSON: {error.msg}: line {line} column {column} (char {at})",
        code="malformed_json",
    ) from None


def _wrong_width(i: int, got: int, width: int, field: str, per_column: bool) -> InvalidInput:
    if per_column:
        return _invalid(
            f"expected {width} values (one per column), got {got} (row {i})",
            f"{field}.data",
            row=i,
        )
    return _invalid(
        f"expected {width} features, got {got} (row {i})", field, row=i, expected=width, got=got
    )


def _table_matrix(
    table: Table, model: LoadedModel, field: str, order: list[int] | None = None
) -> NDArray[Any]:
    """:func:`_matrix` for a table found in a large body, read piece by piece into the matrix.
    ``order``: the model's features as positions in a row (``dataframe_split`` columns)."""
    width, per_column = model.n_features, order is not None
    not_rows = (
        _invalid(f"{field}.data must be a list of rows", f"{field}.data")
        if per_column
        else _invalid(f"{field} must be a list of rows (lists of values)", field)
    )
    if table.stray >= 0:
        raise not_rows  # an object where a row goes
    counts = table.values_per_row()  # every width checked before any value, as _matrix does
    wrong = np.flatnonzero(counts != width)
    if len(wrong):
        i = int(wrong[0])
        raise _wrong_width(i, int(counts[i]), width, field, per_column)
    X = np.empty((table.rows, width), dtype=np.float64)
    for first, stop, text, origin in table.pieces():
        if first == stop and len(text) > PIECE:
            raise not_rows  # a long run of something between two rows
        rows = _loads(text, functools.partial(operator.add, origin), table.body)
        if first == stop or len(rows) != stop - first:
            raise not_rows  # it parsed: a value between the rows that is not a row
        for i, row in enumerate(rows, first):
            if not isinstance(row, list):
                raise not_rows
            if len(row) != width:
                raise _wrong_width(i, len(row), width, field, per_column)
        if order is not None:
            rows = [[row[k] for k in order] for row in rows]
        try:
            X[first:stop] = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            _first_bad_number(rows, field, first)
        del rows  # before the next piece is parsed: one piece's objects at a time
    if table.fault >= 0:
        raise _nested_value(table, field, order)
    _refuse_nonfinite(X, model, field)
    return X


def _nested_value(table: Table, field: str, order: list[int] | None) -> InvalidInput:
    """The 422 for the first array or object inside a row, read from a window of the body
    (a nested value can be as long as the body: only its start is quoted)."""
    i, j = table.fault_row, table.values_before_fault()
    value: str | None = None
    before = table.body[table.starts[i] + 1 : table.fault]
    if len(before) <= PIECE:  # a bad value before it in the row is named first, as by _matrix
        try:
            values = _loads(b"[" + before + b"null]")
        except BadRequest:
            values = []
        for k, v in enumerate(values[:-1]):
            if isinstance(v, bool) or not isinstance(v, int | float):
                j, value = k, quote(v)
                break
    if order is not None and j < len(order):
        j = order.index(j)
    if value is None:
        window = table.body[table.fault : table.fault + _WINDOW].decode("utf-8", "replace")
        try:
            value = quote(json.JSONDecoder(parse_constant=_constant).raw_decode(window)[0])
        except (ValueError, RecursionError):
            value = cut(window)
    return _invalid(f"row {i}, feature {j}: expected a number, got {value}", field, row=i, column=j)


def _fields(data: Any) -> tuple[str, Any]:
    """The one input key of a body and its value, or the 422 for a body without exactly one."""
    if not isinstance(data, dict):
        raise _invalid("the body must be a JSON object", "body")
    if len(data) == 1 and "inputs" in data:  # the common body
        return "inputs", data["inputs"]
    given = [k for k in INPUT_KEYS if k in data]
    if len(given) != 1:
        raise _invalid(f"give exactly one of {', '.join(INPUT_KEYS)}", "body", found=given)
    extra = [k for k in data if k not in INPUT_KEYS]
    if extra:
        raise _invalid(f"unknown field {quote(extra[0])}", cut(extra[0]))
    return given[0], data[given[0]]


def _table_fields(
    body: bytes, model: LoadedModel, settings: Settings
) -> tuple[str, Any, Table] | None:
    """For a large body of a numeric model: the input key, its value (the table left out) and
    the table, when the table is where a table of rows goes; else ``None`` (read it whole)."""
    if not model.numeric_only:
        return None
    found = find_table(body, settings.max_predict_rows)
    if found is None:
        return None
    skeleton, table = found
    placeholder_end = table.start + len(PLACEHOLDER)

    def where(p: int) -> int:  # a position in the skeleton -> the same byte in the body
        if p < table.start:
            return p
        return table.start if p < placeholder_end else p - placeholder_end + table.end + 1

    key, payload = _fields(_loads(skeleton, where, body))
    if key == "dataframe_split" and isinstance(payload, dict):
        rows = payload.get("data")
    else:
        rows = payload if key in ("inputs", "instances") else None
    return (key, payload, table) if rows == PLACEHOLDER_TEXT else None


def parse_predict_body(body: bytes, model: LoadedModel, settings: Settings) -> NDArray[Any]:
    """Raw JSON body -> the feature table in the model's order. 400 malformed JSON, 413 too
    many rows, 422 for content that does not fit the model (naming row / column)."""
    if len(body) > settings.max_predict_body_bytes:
        raise PayloadTooLarge(
            f"request body over {settings.max_predict_body_bytes} bytes",
            {"limit": settings.max_predict_body_bytes},
        )
    found = _table_fields(body, model, settings) if len(body) > THRESHOLD else None
    if found is not None:
        key, payload, table = found
        _check_rows(table.rows, settings, key)
        if key == "dataframe_split":
            return _from_split(payload, model, key, table)
        return _table_matrix(table, model, key)
    key, payload = _fields(_loads(body))
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
