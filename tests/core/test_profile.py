"""The dataset profile: every number equals polars' own on the same CSV (read independently,
``NA`` and empty cells as nulls), and the result is plain JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.config import Settings
from core.datasets import ParsedDataset, parse_upload
from core.datasets.profile import profile_of

# Gaps as empty cells and NA in numeric and categorical columns; "empty" has no value at all,
# "one" a single value (its sample std is undefined); "target" is a regression label.
REGRESSION = b"""a,b,empty,one,color,size,target
1.5,10,,,red,S,0.5
NA,20,NA,NA,blue,,1.25
2.5,,,7,red,M,2.0
,30,,,NA,L,3.5
-4.0,30,,,green,S,-1.0
1.5,40,,,blue,NA,7.25
0.1,20.5,,,blue,S,2.75
"""

# A string class label; tied counts whose value order differs from the order of appearance.
CLASSIFICATION = b"""x,tag,species
3.25,z,Gentoo
NA,z,Adelie
1.0,b,Adelie
,b,Chinstrap
2.0,m,Adelie
5.5,m,Gentoo
2.0,m,Adelie
-1.5,a,Adelie
0.0,NA,Chinstrap
9.0,,Gentoo
"""


def _parse(tmp_path: Path, content: bytes, label: str | None = None) -> ParsedDataset:
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    settings = Settings(database_url="sqlite://", data_dir=tmp_path)
    return parse_upload(path, filename="d.csv", content_type=None, label=label, settings=settings)


def _polars(content: bytes) -> pl.DataFrame:
    # Read independently of the parser: polars' own reading of the same bytes.
    return pl.read_csv(content, null_values=["NA", ""])


def _column(profile: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (c for c in profile["columns"] if c["name"] == name)
    return found


def _polars_numeric(series: pl.Series) -> dict[str, Any]:
    values = series.cast(pl.Float64)
    return {
        "missing": values.null_count(),
        "min": values.min(),
        "max": values.max(),
        "mean": values.mean(),
        "std": values.std(ddof=1),
        "n_unique": values.drop_nulls().n_unique(),
    }


def _polars_top(series: pl.Series, top: int | None = None) -> list[list[Any]]:
    counts = (
        series.drop_nulls()
        .value_counts(name="n")
        .sort(["n", series.name], descending=[True, False])
    )
    rows = [[value, n] for value, n in counts.iter_rows()]
    return rows if top is None else rows[:top]


def _assert_close(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours.keys() >= theirs.keys()
    for key, expected in theirs.items():
        if expected is None or isinstance(expected, int):
            assert ours[key] == expected, key
        else:
            assert ours[key] == pytest.approx(expected, rel=1e-12, abs=1e-12), key


def test_numeric_columns_equal_polars(tmp_path: Path) -> None:
    profile = profile_of(_parse(tmp_path, REGRESSION))
    frame = _polars(REGRESSION)
    for name in ("a", "b", "empty", "one"):
        column = _column(profile, name)
        assert column["type"] == "numeric"
        _assert_close(column, _polars_numeric(frame[name]))
    # The file's gaps really are there (and polars saw them too).
    assert [_column(profile, n)["missing"] for n in ("a", "b", "empty", "one")] == [2, 1, 7, 6]


def test_categorical_columns_equal_polars(tmp_path: Path) -> None:
    profile = profile_of(_parse(tmp_path, REGRESSION))
    frame = _polars(REGRESSION)
    for name in ("color", "size"):
        column = _column(profile, name)
        assert column["type"] == "categorical"
        assert column["missing"] == frame[name].null_count() > 0
        assert column["n_unique"] == frame[name].drop_nulls().n_unique()
        assert column["top"] == _polars_top(frame[name])
        assert "mean" not in column


def test_columns_keep_the_original_order_and_the_row_count(tmp_path: Path) -> None:
    profile = profile_of(_parse(tmp_path, REGRESSION))
    frame = _polars(REGRESSION)
    assert profile["n_rows"] == frame.height == 7
    assert [c["name"] for c in profile["columns"]] == frame.columns[:-1]
    assert [c["type"] for c in profile["columns"]] == ["numeric"] * 4 + ["categorical"] * 2


def test_regression_label_equals_polars(tmp_path: Path) -> None:
    label = profile_of(_parse(tmp_path, REGRESSION))["label"]
    target = _polars(REGRESSION)["target"]
    assert label["name"] == "target"
    assert label["task"] == "regression"
    assert label["distribution"] is None
    expected = _polars_numeric(target)
    _assert_close(label, {k: expected[k] for k in ("min", "max", "mean", "std")})
    # What a request to treat these labels as classes is checked against (core.runs).
    assert label["n_unique"] == target.n_unique()
    assert label["integral"] is bool((target % 1 == 0).all())


def test_classification_label_distribution_equals_polars(tmp_path: Path) -> None:
    profile = profile_of(_parse(tmp_path, CLASSIFICATION))
    frame = _polars(CLASSIFICATION)
    label = profile["label"]
    assert (label["name"], label["task"]) == ("species", "classification")
    counts = dict(frame["species"].value_counts().iter_rows())
    assert label["distribution"] == [[c, counts[c]] for c in sorted(counts)]
    assert label["distribution"] == [["Adelie", 5], ["Chinstrap", 2], ["Gentoo", 3]]
    assert "mean" not in label
    _assert_close(_column(profile, "x"), _polars_numeric(frame["x"]))


def test_integer_classes_are_plain_ints_in_class_order(tmp_path: Path) -> None:
    content = b"f,y\n1,2\n2,0\n3,2\nNA,1\n5,2\n6,0\n"
    label = profile_of(_parse(tmp_path, content))["label"]
    counts = dict(_polars(content)["y"].value_counts().iter_rows())
    assert label["task"] == "classification"
    assert (
        label["distribution"]
        == [[c, counts[c]] for c in sorted(counts)]
        == [
            [0, 2],
            [1, 1],
            [2, 3],
        ]
    )
    assert all(type(c) is int and type(n) is int for c, n in label["distribution"])


def test_top_limit_and_ties_broken_by_value(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, CLASSIFICATION)
    tag = _polars(CLASSIFICATION)["tag"]
    # m: 3; z and b: 2 each (z seen first); a: 1; two gaps (NA and empty) are not counted.
    assert _column(profile_of(parsed), "tag")["top"] == [["m", 3], ["b", 2], ["z", 2], ["a", 1]]
    assert _column(profile_of(parsed), "tag")["top"] == _polars_top(tag)
    assert _column(profile_of(parsed, top=2), "tag")["top"] == [["m", 3], ["b", 2]]
    assert _column(profile_of(parsed, top=3), "tag")["top"] == _polars_top(tag, 3)
    assert _column(profile_of(parsed, top=0), "tag")["top"] == []
    assert _column(profile_of(parsed, top=2), "tag")["n_unique"] == 4


def _assert_plain(value: Any) -> None:
    # np.float64 subclasses float and would pass json.dumps: check exact types.
    if isinstance(value, dict):
        assert all(type(k) is str for k in value)
        for item in value.values():
            _assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain(item)
    else:
        assert value is None or type(value) in (bool, int, float, str), (value, type(value))
        assert not (type(value) is float and not math.isfinite(value))


@pytest.mark.parametrize("content", [REGRESSION, CLASSIFICATION], ids=["regression", "classes"])
def test_the_profile_is_plain_json(tmp_path: Path, content: bytes) -> None:
    profile = profile_of(_parse(tmp_path, content))
    _assert_plain(profile)
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


def test_an_all_missing_numeric_column_has_no_statistics(tmp_path: Path) -> None:
    column = _column(profile_of(_parse(tmp_path, REGRESSION)), "empty")
    assert column == {
        "name": "empty",
        "type": "numeric",
        "missing": 7,
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "n_unique": 0,
    }


def test_an_all_missing_categorical_column_has_no_top(tmp_path: Path) -> None:
    # CSV types a column without values as numeric; other formats may give a categorical one.
    parsed = _parse(tmp_path, REGRESSION)
    codes = parsed.X_categorical.copy()
    codes[:, 0] = -1
    profile = profile_of(dataclasses.replace(parsed, X_categorical=codes))
    assert _column(profile, "color") == {
        "name": "color",
        "type": "categorical",
        "missing": 7,
        "n_unique": 0,
        "top": [],
    }
    json.dumps(profile, allow_nan=False)


def test_no_categorical_columns(tmp_path: Path) -> None:
    content = b"p,q,t\n1,NA,0.5\n2,4,1.5\n,5,2.5\n4,6,3.75\n"
    profile = profile_of(_parse(tmp_path, content))
    frame = _polars(content)
    assert [c["type"] for c in profile["columns"]] == ["numeric", "numeric"]
    for name in ("p", "q"):
        _assert_close(_column(profile, name), _polars_numeric(frame[name]))
    json.dumps(profile, allow_nan=False)


def test_no_numeric_columns(tmp_path: Path) -> None:
    content = b"c,d,y\nu,k,1\nv,,0\nu,k,1\nNA,l,0\n"
    parsed = _parse(tmp_path, content)
    assert parsed.X_numeric.shape == (4, 0)
    profile = profile_of(parsed)
    frame = _polars(content)
    assert [c["type"] for c in profile["columns"]] == ["categorical", "categorical"]
    for name in ("c", "d"):
        assert _column(profile, name)["top"] == _polars_top(frame[name])
        assert _column(profile, name)["missing"] == frame[name].null_count() == 1
    assert profile["label"]["distribution"] == [[0, 2], [1, 2]]


def test_a_wider_file_with_random_gaps_equals_polars(tmp_path: Path) -> None:
    # A wider, longer file with random gaps: every column still matches polars.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 6)).round(3)
    lines = ["c0,c1,c2,c3,c4,c5,y"]
    for i, row in enumerate(values):
        cells = ["NA" if rng.random() < 0.2 else repr(float(v)) for v in row]
        lines.append(",".join([*cells, str(i * 0.5)]))
    content = ("\n".join(lines) + "\n").encode()
    profile = profile_of(_parse(tmp_path, content))
    frame = _polars(content)
    for name in frame.columns[:-1]:
        _assert_close(_column(profile, name), _polars_numeric(frame[name]))
