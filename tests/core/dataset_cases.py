"""Bad uploads and what the service must answer, shared by the core and HTTP tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.core.npz_payloads import header_bomb, npz_bytes


@dataclass(frozen=True)
class BadUpload:
    id: str
    filename: str
    content: bytes
    status: int
    code: str
    details: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    message_has: tuple[str, ...] = ()


def _rows(n: int, make: Any) -> str:
    return "".join(make(i) for i in range(n))


# Ten clean rows, then the problem on a known line (header = line 1, so row i is line i + 2).
_CLEAN = _rows(3, lambda i: f"{30 + i},{1000 * i},{i % 2}\n")

BAD_UPLOADS = [
    BadUpload(
        "inf",
        "d.csv",
        f"age,income,y\n{_CLEAN}inf,5,1\n".encode(),
        422,
        "non_finite_value",
        {"column": "age", "line": 5, "value": "inf"},
    ),
    BadUpload(
        "1e309",
        "d.csv",
        f"age,income,y\n{_CLEAN}1e309,5,1\n".encode(),
        422,
        "non_finite_value",
        {"column": "age", "line": 5, "value": "1e309"},
    ),
    BadUpload(
        "non-numeric",
        "d.csv",
        ("age,income,y\n" + _rows(7, lambda i: f"{i},{i * 10},{i % 2}\n") + "8,12k,0\n").encode(),
        422,
        "non_numeric_value",
        {"column": "income", "line": 9, "value": "12k", "expected": "number"},
    ),
    BadUpload(
        "ragged-short",
        "d.csv",
        b"a,b,y\n1,2,0\n3,4\n5,6,1\n",
        422,
        "ragged_row",
        {"line": 3, "fields": 2, "expected": 3},
    ),
    BadUpload(
        "ragged-long",
        "d.csv",
        b"a,b,y\n1,2,0\n3,4,1\n5,6,7,1\n",
        422,
        "ragged_row",
        {"line": 4, "fields": 4, "expected": 3},
    ),
    BadUpload("blank-line", "d.csv", b"a,b,y\n1,2,0\n\n5,6,1\n", 422, "ragged_row", {"line": 3}),
    BadUpload(
        "missing-label",
        "d.csv",
        b"a,y\n1,0\n2,1\n3,\n",
        422,
        "missing_value",
        {"column": "y", "line": 4},
    ),
    BadUpload(
        "quoted-newline-line-numbers",
        "d.csv",
        b'a,b,y\n"multi\nline",1,0\nx,2,1\ny,2,\n',
        422,
        "missing_value",
        {"column": "y", "line": 5},
    ),
    BadUpload("empty", "d.csv", b"", 422, "empty_file"),
    BadUpload("header-only", "d.csv", b"a,b,y\n", 422, "no_rows"),
    BadUpload(
        "label-missing",
        "d.csv",
        b"a,b,c\n1,2,3\n4,5,6\n",
        422,
        "label_not_found",
        {"label": "y", "available": ["a", "b", "c"]},
        label="y",
        message_has=("label column 'y' not found; available: ['a', 'b', 'c']",),
    ),
    BadUpload(
        "one-class",
        "d.csv",
        b"a,y\n1,cat\n2,cat\n3,cat\n",
        422,
        "single_class",
        {"column": "y", "classes": ["cat"]},
    ),
    BadUpload(
        "duplicate-column",
        "d.csv",
        b"a,a,y\n1,2,0\n3,4,1\n",
        422,
        "duplicate_column",
        {"column": "a"},
    ),
    BadUpload(
        "latin-1",
        "d.csv",
        "a,y\n1,0\n2,caf\u00e9\n".encode("latin-1"),
        422,
        "invalid_encoding",
        {"line": 3},
    ),
    BadUpload("utf-16", "d.csv", "a,y\n1,0\n2,1\n".encode("utf-16"), 415, "unsupported_encoding"),
    BadUpload(
        "png",
        "d.bin",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64,
        415,
        "unsupported_format",
    ),
    BadUpload(
        "png-named-npz",
        "d.npz",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64,
        422,
        "invalid_npz",
    ),
    BadUpload(
        "npz-shape-mismatch",
        "d.npz",
        npz_bytes(X=np.ones((100, 8)), y=np.zeros(80)),
        422,
        "shape_mismatch",
        {"X_rows": 100, "y_rows": 80},
        message_has=("X has 100 rows, y has 80",),
    ),
    BadUpload(
        "npz-missing-y",
        "d.npz",
        npz_bytes(X=np.ones((10, 2))),
        422,
        "invalid_npz",
        {"found": ["X"]},
    ),
    BadUpload(
        "npz-nan",
        "d.npz",
        npz_bytes(X=np.array([[1.0, np.inf], [2.0, 3.0]] * 3), y=np.arange(6) % 2 * 1.5),
        422,
        "non_finite_value",
        {"row": 0, "column": 1},
    ),
    BadUpload(
        "npz-label-nan",
        "d.npz",
        npz_bytes(X=np.ones((6, 2)), y=np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0])),
        422,
        "missing_value",
        {"column": "y", "row": 2},
    ),
    BadUpload(
        "npz-header-bomb", "d.npz", header_bomb((2**40,)), 422, "invalid_npz", {"array": "X"}
    ),
    BadUpload("json-deep", "d.json", b"[" * 100_000 + b"]" * 100_000, 422, "invalid_json"),
    BadUpload(
        "json-ragged",
        "d.json",
        b'{"X": [[1, 2], [3], [5, 6]], "y": [0, 1, 0]}',
        422,
        "ragged_row",
        {"row": 1},
    ),
    BadUpload(
        "json-string-in-X",
        "d.json",
        b'{"X": [[1, 2], [3, "q"]], "y": [0, 1]}',
        422,
        "non_numeric_value",
        {"row": 1, "column": 1, "value": "q"},
    ),
    BadUpload(
        "json-shape-mismatch",
        "d.json",
        b'{"X": [[1], [2], [3]], "y": [0, 1]}',
        422,
        "shape_mismatch",
        {"X_rows": 3, "y_rows": 2},
    ),
    BadUpload(
        "json-records-null",
        "d.json",
        b'{"records": [{"a": 1, "y": "p"}, {"a": 2, "y": null}, {"a": 3, "y": "p"}]}',
        422,
        "missing_value",
        {"column": "y", "record": 1},
    ),
    BadUpload("json-unknown-shape", "d.json", b'{"rows": []}', 422, "invalid_json_shape"),
]
