"""What the client sends: upload parts (a file streamed from disk, a DataFrame as CSV, arrays as
NPZ) and predict bodies (arrays in feature order, DataFrames by column name)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

# Rows per predict request: below the server's default cap of 10,000.
PREDICT_CHUNK_ROWS = 5_000

FileFactory = Callable[[ExitStack], dict[str, Any] | list[tuple[str, Any]]]


def upload_files(data: Any, y: Any) -> FileFactory:
    if y is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, X=np.asarray(data), y=np.asarray(y))
        payload = buffer.getvalue()
        return lambda _stack: {"file": ("arrays.npz", payload, "application/octet-stream")}
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(path)

        def open_file(stack: ExitStack) -> dict[str, Any]:
            handle: IO[bytes] = stack.enter_context(path.open("rb"))
            return {"file": (path.name, handle, "application/octet-stream")}

        return open_file
    csv = _dataframe_csv(data)
    return lambda _stack: {"file": ("dataframe.csv", csv, "text/csv")}


def _dataframe_csv(frame: Any) -> bytes:
    if hasattr(frame, "write_csv"):  # polars
        return str(frame.write_csv()).encode()
    if hasattr(frame, "to_csv"):  # pandas
        return str(frame.to_csv(index=False)).encode()
    raise TypeError(
        "upload() takes a file path, a pandas or polars DataFrame, or arrays X and y; "
        f"got {type(frame).__name__}"
    )


def predict_bodies(X: Any) -> Iterator[dict[str, Any]]:
    """Request bodies of at most PREDICT_CHUNK_ROWS rows: DataFrames and records (a list of
    dicts) by column name, arrays in feature order; NaN is sent as null (a missing value)."""
    if isinstance(X, list) and X and isinstance(X[0], dict):
        for start in range(0, len(X), PREDICT_CHUNK_ROWS):
            records = X[start : start + PREDICT_CHUNK_ROWS]
            yield {"records": [{k: _json_value(v) for k, v in r.items()} for r in records]}
        return
    if hasattr(X, "columns") and hasattr(X, "to_dicts"):  # polars (or a table shaped like it)
        columns, rows = list(X.columns), [list(r.values()) for r in X.to_dicts()]
    elif hasattr(X, "columns") and hasattr(X, "to_numpy"):  # pandas
        columns = [str(c) for c in X.columns]
        rows = [list(r) for r in X.to_numpy(dtype=object).tolist()]
    else:
        columns, rows = None, _rows(X)
    for start in range(0, max(len(rows), 1), PREDICT_CHUNK_ROWS):
        chunk = [[_json_value(v) for v in row] for row in rows[start : start + PREDICT_CHUNK_ROWS]]
        if columns is None:
            yield {"inputs": chunk}
        else:
            yield {"dataframe_split": {"columns": columns, "data": chunk}}


def _rows(X: Any) -> list[list[Any]]:
    if isinstance(X, np.ndarray):
        array = X.reshape(1, -1) if X.ndim == 1 else X
        rows: list[list[Any]] = array.tolist()
        return rows
    return [list(row) for row in X]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN: a missing value
        return None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return value
