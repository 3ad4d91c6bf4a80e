"""Missing values at upload: empty cells, NA, null, NaN (as written or padded) in numeric and
categorical columns of CSV, JSON and NPZ become NaN / code -1 and are counted; infinity and a
missing label are still refused, naming where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.datasets import parse_upload
from core.errors import InvalidInput
from tests.core.npz_payloads import npz_bytes

PENGUINS = b"""species,bill_mm,mass_g,island,sex
Adelie,39.1,3750,Torgersen,male
Adelie,NA,NA,Torgersen,NA
Gentoo,46.1,,Biscoe,female
Gentoo, 50.0 , NaN ,Biscoe, null
Chinstrap,46.5,3500,Dream,
Chinstrap,49.0,3950, NA ,male
"""


def _parse(tmp_path: Path, content: bytes, name: str, label: str | None = None):
    path = tmp_path / name
    path.write_bytes(content)
    settings = Settings(database_url="sqlite://", data_dir=tmp_path)
    return parse_upload(path, filename=name, content_type=None, label=label, settings=settings)


def test_a_penguins_csv_with_gaps_in_every_kind_of_column(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, PENGUINS, "penguins.csv", label="species")
    assert parsed.feature_names == ["bill_mm", "mass_g", "island", "sex"]
    assert parsed.feature_types == ["numeric", "numeric", "categorical", "categorical"]
    nan = np.nan
    np.testing.assert_array_equal(
        parsed.X_numeric,
        [[39.1, 3750], [nan, nan], [46.1, nan], [50.0, nan], [46.5, 3500], [49.0, 3950]],
    )
    assert parsed.categories == [["Biscoe", "Dream", "Torgersen"], ["female", "male"]]
    # -1: missing (" NA " padded included); the vocabulary holds only real values.
    assert parsed.X_categorical[:, 0].tolist() == [2, 2, 0, 0, 1, -1]
    assert parsed.X_categorical[:, 1].tolist() == [1, -1, 0, -1, -1, 1]
    assert parsed.missing_counts() == {"bill_mm": 1, "mass_g": 3, "island": 1, "sex": 3}
    assert parsed.classes == ["Adelie", "Chinstrap", "Gentoo"]


def test_a_complete_file_has_no_missing_counts(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, b"a,b,y\n1,x,0\n2,z,1\n3,x,1\n", "d.csv")
    assert parsed.missing_counts() == {}


def test_the_numeric_fast_path_keeps_empty_cells_as_missing(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'' if i % 3 == 0 else i * 2},{i % 2}\n" for i in range(30))
    parsed = _parse(tmp_path, ("a,b,y\n" + rows).encode(), "d.csv")
    assert parsed.missing_counts() == {"b": 10}
    assert np.isnan(parsed.X_numeric[0, 1]) and parsed.X_numeric[1, 1] == 2.0


def test_json_records_and_matrices_and_npz(tmp_path: Path) -> None:
    records = (
        b'{"records": [{"a": 1, "c": "x", "y": 0}, {"a": null, "c": null, "y": 1},'
        b' {"a": 3, "c": "z", "y": 1}]}'
    )
    parsed = _parse(tmp_path, records, "d.json")
    assert parsed.missing_counts() == {"a": 1, "c": 1}
    matrix = b'{"X": [[1, null], [2, 3], [null, 4]], "y": [0, 1, 1]}'
    assert _parse(tmp_path, matrix, "m.json").missing_counts() == {"x0": 1, "x1": 1}
    x = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 4.0]])
    npz = _parse(tmp_path, npz_bytes(X=x, y=np.array([0, 1, 1])), "d.npz")
    assert npz.missing_counts() == {"x0": 1, "x1": 1}


@pytest.mark.parametrize(
    ("content", "code", "where"),
    [
        (b"a,y\n1,0\n2,NA\n3,1\n", "missing_value", {"column": "y", "line": 3}),
        (b"a,y\n1,0\ninf,1\n3,1\n", "non_finite_value", {"column": "a", "line": 3}),
        (b"a,y\n1,0\nabc,1\n3,1\n4,0\n", "non_numeric_value", {"column": "a", "line": 3}),
    ],
    ids=["label-NA", "infinity", "a-stray-word"],
)
def test_what_is_still_refused(
    tmp_path: Path, content: bytes, code: str, where: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        _parse(tmp_path, content, "d.csv")
    assert caught.value.code == code
    assert where.items() <= caught.value.details.items()


def test_NA_in_a_numeric_table_stays_on_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.datasets import csv as csv_parser

    def no_string_path(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the string path read the file")

    monkeypatch.setattr(csv_parser, "_read_strings", no_string_path)
    rows = "".join(f"{i},{'NA' if i % 4 == 0 else i},{i % 2}\n" for i in range(40))
    parsed = _parse(tmp_path, ("a,b,y\n" + rows).encode(), "d.csv")
    assert parsed.missing_counts() == {"b": 10}
