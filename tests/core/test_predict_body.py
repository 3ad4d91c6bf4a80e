"""Predict bodies read in pieces (core.predict_tables) answer exactly as when read whole: each
body is parsed twice, once with the piece threshold at 0 (and pieces of a few rows) and once
with it past the body, and the matrices or the errors (class, code, message, details) must
match. Then what the pieces are for: a large body costs about its matrix in memory."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from core import predict_body, predict_tables
from core.config import Settings
from core.errors import DescentError
from core.predict_body import parse_predict_body
from core.predict_tables import find_table

NAMES = ["a", "b", "c", "d"]
SETTINGS = Settings(max_predict_rows=50)
ROWS = [[0.5, -1.0, 2e3, 7], [1, 2, 3, 4], [-0.25, 0, 1.5e-3, 9.75]] * 4


def model(impute: str = "median", types: list[str] | None = None) -> Any:
    types = types or ["numeric"] * 4
    return SimpleNamespace(
        feature_names=NAMES,
        feature_types=types,
        numeric_only=all(t == "numeric" for t in types),
        n_features=4,
        preprocessor=SimpleNamespace(impute=impute),
    )


def outcome(body: bytes, m: Any) -> tuple[Any, ...]:
    try:
        X = parse_predict_body(body, m, SETTINGS)
    except DescentError as error:
        return type(error).__name__, error.code, error.message, error.details
    return ("ok", X.dtype.kind, X.shape, X.tolist() if X.dtype == object else X.tobytes())


def both(body: bytes, m: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(whole, in pieces)."""
    with monkeypatch.context() as patch:
        patch.setattr(predict_body, "THRESHOLD", 10**9)
        whole = outcome(body, m)
    with monkeypatch.context() as patch:
        patch.setattr(predict_body, "THRESHOLD", 0)
        patch.setattr(predict_body, "PIECE", 40)
        patch.setattr(predict_tables, "PIECE", 40)
        pieces = outcome(body, m)
        for block in (1, 2, 3, 5, 7, 11, 16):  # blocks ending anywhere: in a string too
            patch.setattr(predict_tables, "BLOCK", block)
            assert outcome(body, m) == pieces, f"blocks of {block} bytes"
    return whole, pieces


def rows_text(rows: list[Any]) -> bytes:
    return orjson.dumps(rows)


SAME: list[tuple[str, bytes]] = [
    ("plain", b'{"inputs": ' + rows_text(ROWS) + b"}"),
    ("instances", b'{"instances": ' + rows_text(ROWS) + b"}"),
    ("indented", orjson.dumps({"inputs": ROWS}, option=orjson.OPT_INDENT_2)),
    ("spaces", b'{ "inputs" :\n [ [1, 2 ,3,4] ,\n\t[ 5,6,7,8 ]  ] }\n'),
    ("null", b'{"inputs": [[1, null, 3, 4], [null, 2, 3, 4]]}'),
    ("nan literal", b'{"inputs": [[1, NaN, 3, 4], [1, 2, 3, 4]]}'),
    ("infinity", b'{"inputs": [[1, 2, 3, 4], [1, 2, Infinity, 4]]}'),
    ("-infinity", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, -Infinity]]}'),
    ("bool", b'{"inputs": [[true, 2, 3, 4], [1, 2, 3, false]]}'),
    ("string", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4], [1, "x,]y", 3, 4]]}'),
    ("numeric string", b'{"inputs": [[1, 2, 3, 4], [1, "2.5", 3, 4]]}'),
    ("short row", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}'),
    ("long row", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}'),
    ("empty row", b'{"inputs": [[1, 2, 3, 4], []]}'),
    ("blank row", b'{"inputs": [[1, 2, 3, 4], [  ]]}'),
    ("short quoted row", b'{"inputs": [[1, 2, 3, 4], ["a,b", 2]]}'),
    ("quoted rows", b'{"inputs": [[1, 2, 3, 4], ["a,b,c", 2, 3, 4], [1,"[", 3, "]]"]]}'),
    ("commas in a string", b'{"inputs": [["x,x,x,x", 2, 3, 4], [1, 2, 3, 4]]}'),
    ("value between rows", b'{"inputs": [[1, 2, 3, 4], 5, [1, 2, 3, 4]]}'),
    ("value before rows", b'{"inputs": [5, [1, 2, 3, 4], [1, 2, 3, 4]]}'),
    ("value after rows", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4], null]}'),
    ("missing comma", b'{"inputs": [[1, 2, 3, 4] [1, 2, 3, 4]]}'),
    ("double comma", b'{"inputs": [[1, 2, 3, 4],, [1, 2, 3, 4]]}'),
    ("trailing comma", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4],]}'),
    ("bad token", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, nope]]}'),
    ("bad number", b'{"inputs": [[1, 2, 3, 4],\n [1, 2, 3, 4],\n [1, 2, 3, 01]]}'),
    ("bad tail", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4]], }'),
    ("bad head", b'{"inputs" [[1, 2, 3, 4], [1, 2, 3, 4]]}'),
    ("too many rows", b'{"inputs": ' + rows_text([[1, 2, 3, 4]] * 51) + b"}"),
    ("no rows key", b'{"rows": [[1, 2, 3, 4]]}'),
    ("extra field", b'{"inputs": [[1, 2, 3, 4]], "x": 1}'),
    ("table under another key", b'{"x": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}'),
    ("two keys", b'{"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}'),
    ("nested row", b'{"inputs": [[1, 2, 3, 4], [1, [2], 3, 4]]}'),
    ("object in row", b'{"inputs": [[1, 2, 3, 4], [1, {"b": 2}, 3, 4]]}'),
    ("nested after a bad cell", b'{"inputs": [[1, 2, 3, 4], ["x", 2, 3, 4], [1, 2, [3], 4]]}'),
    ("nested after a string", b'{"inputs": [[1, 2, 3, 4], ["x", "y,", 3, [[[4]]]]]}'),
    ("nested with NaN", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, [NaN, {"a": [1]}]]]}'),
    ("object for a row", b'{"inputs": [[1, 2, 3, 4], {"a": 1, "b": 2, "c": 3, "d": 4}]}'),
    ("mismatched brackets", b'{"inputs": [[1, 2, 3, 4}, [1, 2, 3, 4]]}'),
    ("records", b'{"records": [{"a": 1, "b": 2, "c": 3, "d": [4]}]}'),
    ("instance records", b'{"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}'),
    ("backslash", b'{"inputs": [[1, 2, 3, 4], [1, "\\"", 3, 4]]}'),
    ("escaped quote and comma", b'{"inputs": [[1, 2, 3, 4], ["a\\",]b,c", 2, 3, 4]]}'),
    ("escaped backslash", b'{"inputs": [[1, 2, 3, 4], ["a\\\\", 2, 3, 4, 5]]}'),
    ("escape runs", b'{"inputs": [["\\\\\\"],[", 2, 3, 4], [1, "\\\\\\\\", [3], 4]]}'),
    ("escaped key", b'{"inp\\u0075ts": [[1, 2, 3, 4], [5, 6, 7, 8]]}'),
    (
        "escaped column",
        b'{"dataframe_split": {"columns": ["\\u0061","b","c","d"], "data": [[1, 2, 3, 4]]}}',
    ),
    ("a NUL string", b'{"inputs": [[1, 2, 3, 4]], "x": "\\u0000"}'),
    ("NUL data", b'{"dataframe_split": {"data": "\\u0000", "index": [[1, 2, 3, 4]]}}'),
    ("unclosed string", b'{"inputs": [[1, 2, 3, 4], [1, "2, 3, 4]]}'),
    ("unclosed table", b'{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4]'),
    (
        "split",
        b'{"dataframe_split": {"columns": ["a","b","c","d"], "data": ' + rows_text(ROWS) + b"}}",
    ),
    (
        "split reordered",
        b'{"dataframe_split": {"index": [0, 1], "columns": ["d","c","b","a"], '
        b'"data": [[1, 2, 3, 4], [5, 6, 7, 8]]}}',
    ),
    (
        "split data first",
        b'{"dataframe_split": {"data": [[1, 2, 3, 4]], "columns": ["d","c","b","a"]}}',
    ),
    ("split no columns", b'{"dataframe_split": {"data": [[1, 2, 3, 4], [5, 6, 7, 8]]}}'),
    (
        "split short row",
        b'{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[1, 2, 3, 4], [5]]}}',
    ),
    (
        "split bad cell",
        b'{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[1, 2, "z", 4]]}}',
    ),
    (
        "split infinity",
        b'{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[1, Infinity, 3, 4]]}}',
    ),
    (
        "split junk",
        b'{"dataframe_split": {"columns": ["d","c","b","a"], "data": [[1, 2, 3, 4], 7]}}',
    ),
    (
        "split unknown column",
        b'{"dataframe_split": {"columns": ["a","b","c","q"], "data": [[1, 2, 3, 4]]}}',
    ),
    (
        "split too many rows",
        b'{"dataframe_split": {"data": ' + rows_text([[1, 2, 3, 4]] * 51) + b"}}",
    ),
    ("split data not a table", b'{"dataframe_split": {"columns": [["a"]], "data": 3}}'),
]


@pytest.mark.parametrize("body", [b for _, b in SAME], ids=[name for name, _ in SAME])
@pytest.mark.parametrize("impute", ["median", "none"])
def test_pieces_answer_as_the_whole_body(
    body: bytes, impute: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, pieces = both(body, model(impute), monkeypatch)
    assert pieces == whole


def test_a_categorical_model_reads_the_body_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    m = model(types=["numeric", "categorical", "numeric", "numeric"])
    whole, pieces = both(b'{"inputs": [[1, "red", 3, 4], [1, null, 3, 4]]}', m, monkeypatch)
    assert pieces == whole and whole[0] == "ok"


def test_the_usual_forms_are_read_in_pieces() -> None:
    """The fast path is taken (not the whole-body fallback) for what clients send."""
    expected = {"plain": 12, "indented": 12, "string": 3, "short row": 2, "split": 12}
    more = {"split reordered": 2, "value between rows": 2, "nested row": 2, "object in row": 2}
    more |= {"backslash": 2, "escaped quote and comma": 2, "escape runs": 2, "escaped key": 2}
    for name, rows in {**expected, **more}.items():
        body = dict(SAME)[name]
        found = find_table(body, 50)
        assert found is not None, name
        skeleton, table = found
        assert table.rows == rows, name
        assert len(skeleton) < 120
    for name in ("records", "unclosed string", "unclosed table", "a NUL string", "NUL data"):
        assert find_table(dict(SAME)[name], 50) is None, name


def test_a_malformed_piece_says_where_in_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    body = dict(SAME)["bad number"]
    whole, pieces = both(body, model(), monkeypatch)
    assert whole == pieces
    assert whole[1] == "malformed_json" and "line 3" in whole[2]


MiB = 1024 * 1024


def large_body(rows: int, width: int) -> bytes:
    """Short numbers (``-0.3,``): the most numbers, and the most objects, a MiB can hold."""
    values = np.round(np.random.default_rng(0).normal(size=(rows, width)), 1)
    return b'{"inputs": ' + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY) + b"}"


def wide_model(width: int) -> Any:
    names = [f"f{i}" for i in range(width)]
    return SimpleNamespace(
        feature_names=names,
        feature_types=["numeric"] * width,
        numeric_only=True,
        n_features=width,
        preprocessor=SimpleNamespace(impute="median"),
    )


@pytest.mark.parametrize("limit", [100_000, 100])
def test_a_large_body_costs_about_its_matrix(limit: int) -> None:
    """8 MiB of 100-column rows: read whole, ~12x the body (a float object per number); in
    pieces, the matrix (here 1.9x the body: the numbers are 4.6 bytes each) and a little more,
    and next to nothing when the rows are refused (413)."""
    body = large_body(18_000, 100)
    m, settings = wide_model(100), Settings(max_predict_rows=limit)
    expected = np.asarray(orjson.loads(body)["inputs"], dtype=np.float64)
    matrix = expected.nbytes
    tracemalloc.start()
    try:
        X = parse_predict_body(body, m, settings)
        peak = tracemalloc.get_traced_memory()[1]
    except DescentError as error:
        peak = tracemalloc.get_traced_memory()[1]
        assert limit == 100 and error.status_code == 413
        assert error.details["rows"] == 18_000
        assert peak < 0.5 * len(body), f"{peak / len(body):.2f}x the body to refuse it"
        return
    finally:
        tracemalloc.stop()
    assert limit == 100_000 and np.array_equal(X, expected)
    print(f"\n{len(body) / MiB:.1f} MiB: peak {peak / MiB:.1f} MiB = {peak / len(body):.2f}x")
    assert peak < matrix + 0.5 * len(body), f"{peak / len(body):.2f}x the body"


HOSTILE = {
    # 2,000,000 one-value rows: read whole, a list per row (~16x the body) before the 413.
    "rows": (b'{"inputs": [' + b",".join([b"[0]"] * 2_000_000) + b"]}", 413, "2000000 rows"),
    # One row of 2,000,000 arrays, or strings (escaped quotes too), or one array nested 4 MB
    # deep: read whole, 28-30x the body (orjson's depth limit stops the last at 1,024 levels).
    "nested": (b'{"inputs": [[' + b",".join([b"[0]"] * 2_000_000) + b"]]}", 422, "feature 0"),
    "strings": (b'{"inputs": [[' + b",".join([b'"\\""'] * 1_500_000) + b"]]}", 422, "got 1500000"),
    "deep": (b'{"inputs": ' + b"[" * 4_000_000 + b"]" * 4_000_000 + b"}", 422, "row 0, feature 0"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_large_body_costs_little(name: str) -> None:
    body, status, needle = HOSTILE[name]
    tracemalloc.start()
    try:
        with pytest.raises(DescentError) as caught:
            parse_predict_body(body, wide_model(1), Settings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.status_code == status and needle in caught.value.message
    assert len(caught.value.message) < 400
    assert peak < 2 * len(body), f"{peak / len(body):.2f}x the body"
