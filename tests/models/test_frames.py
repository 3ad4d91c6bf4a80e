"""The engine takes DataFrames (polars, pandas) with their column names and types, and predicts
from a frame by column name, whatever the column order; nulls are missing values."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from models import train


def _table(n: int = 200) -> tuple[dict[str, Any], np.ndarray]:
    rng = np.random.default_rng(0)
    size = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    y = np.where((colour == "red") | (size > 1.0), "cat", "dog")
    return {"size": size, "colour": colour, "count": rng.integers(0, 5, n)}, y


SPEC = {"layers": [{"units": 16}], "epochs": 30, "seed": 1}


def test_a_polars_frame_brings_names_types_and_nulls() -> None:
    columns, y = _table()
    frame = pl.DataFrame(columns).with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 0).then(None).otherwise(pl.col("size")).alias("size")
    )
    result = train(frame, pl.Series(y), SPEC)
    model = result.model
    assert model.feature_names == ["size", "colour", "count"]
    assert model.feature_types == ["numeric", "categorical", "numeric"]
    assert model.preprocessor.indicators == [0]  # "size" had nulls
    reordered = frame.select("count", "colour", "size")
    np.testing.assert_allclose(model.predict_proba(reordered), model.predict_proba(frame))
    with pytest.raises(Exception, match="no column 'colour'"):
        model.predict(frame.drop("colour"))


def test_a_pandas_frame_too() -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional; polars covers frames above")
    columns, y = _table()
    frame = pd.DataFrame(columns)
    frame.loc[::13, "colour"] = None
    frame["count"] = frame["count"].astype("Int64")
    frame.loc[::11, "count"] = pd.NA
    result = train(frame, pd.Series(y), SPEC)
    assert result.model.feature_names == ["size", "colour", "count"]
    assert result.model.feature_types == ["numeric", "categorical", "numeric"]
    assert result.model.preprocessor.missing_slot == [True]
    assert result.model.preprocessor.indicators == [1]  # "count": the 2nd numeric column
    probabilities = result.model.predict_proba(frame[["count", "size", "colour"]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
