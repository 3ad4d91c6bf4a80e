"""Missing values in the engine: numeric columns take the training split's median (or mean)
plus a 0/1 indicator input, categorical columns a "missing" slot; fitted on training rows only,
stored with the model, applied at predict; "none" refuses them naming row and feature."""

from __future__ import annotations

import numpy as np
import pytest

from models import train
from models.errors import DataError, InputError
from models.model import load_model
from models.preprocess import Preprocessor
from models.split import split_indices
from models.vocabulary import FeatureType

NAN = float("nan")
NUM, CAT = FeatureType.numeric, FeatureType.categorical
TYPES = [NUM, NUM, CAT]


def _rows() -> np.ndarray:
    rows = np.empty((6, 3), dtype=object)
    rows[:, 0] = [1.0, NAN, 3.0, 10.0, None, 4.0]  # numeric with gaps: median of 1,3,10,4 = 3.5
    rows[:, 1] = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]  # numeric, complete: no indicator
    rows[:, 2] = ["red", None, "blue", "red", NAN, "blue"]  # categorical with gaps
    return rows


def test_fit_fills_from_the_training_rows_and_adds_indicators_and_a_missing_slot() -> None:
    rows = _rows()
    pre = Preprocessor.fit(
        rows, feature_names=["a", "b", "c"], feature_types=TYPES,
        standardize=False,
    )  # fmt: skip
    assert pre.fill.tolist() == [3.5, 7.5] and pre.indicators == [0]  # 7.5: median of 5..10
    assert pre.categories == [["blue", "red"]] and pre.missing_slot == [True]
    assert pre.n_inputs == 2 + 1 + 3
    out = pre.transform(rows, dtype="float64")
    # a, b, a-was-missing, c=blue, c=red, c=missing
    np.testing.assert_array_equal(
        out,
        [
            [1.0, 5.0, 0, 0, 1, 0],
            [3.5, 6.0, 1, 0, 0, 1],
            [3.0, 7.0, 0, 1, 0, 0],
            [10.0, 8.0, 0, 0, 1, 0],
            [3.5, 9.0, 1, 0, 0, 1],
            [4.0, 10.0, 0, 1, 0, 0],
        ],
    )
    mean = Preprocessor.fit(
        rows, feature_names=["a", "b", "c"], feature_types=TYPES,
        standardize=True, impute="mean",
    )  # fmt: skip
    assert mean.fill[0] == pytest.approx(4.5)  # (1 + 3 + 10 + 4) / 4
    # Standardized after imputing: the filled column's mean is that of the filled values.
    filled = np.array([1.0, 4.5, 3.0, 10.0, 4.5, 4.0])
    assert mean.mean[0] == pytest.approx(filled.mean()) and mean.scale[0] == pytest.approx(
        filled.std()
    )


def test_complete_columns_cost_nothing() -> None:
    x = np.arange(12.0).reshape(6, 2)
    pre = Preprocessor.fit(x, feature_names=["a", "b"], feature_types=[NUM, NUM], standardize=True)
    assert pre.indicators == [] and pre.n_inputs == 2
    # A gap seen only at predict time takes the training median (5 of 0, 2, ..., 10), with no
    # indicator to set.
    assert pre.fill[0] == 5.0
    out = pre.transform(np.array([[NAN, 1.0]]), dtype="float64")
    assert out[0, 0] == pytest.approx((5.0 - pre.mean[0]) / pre.scale[0])


def test_impute_none_refuses_naming_row_and_feature() -> None:
    with pytest.raises(DataError, match=r"row 1, feature 'a': a missing value.*impute is 'none'"):
        Preprocessor.fit(
            _rows(), feature_names=["a", "b", "c"],
            feature_types=TYPES, standardize=False, impute="none",
        )  # fmt: skip
    rows = _rows()
    rows[:, 0] = 1.0
    with pytest.raises(DataError, match=r"row 1, feature 'c': a missing value"):
        Preprocessor.fit(
            rows, feature_names=["a", "b", "c"],
            feature_types=TYPES, standardize=False, impute="none",
        )  # fmt: skip


def test_a_trained_model_keeps_its_imputation_through_save_and_load() -> None:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    x[rng.random(n) < 0.2, 0] = np.nan
    result = train(x, y, {"layers": [{"units": 8}], "epochs": 30, "validation_split": 0.0})
    pre = result.model.preprocessor
    assert pre.indicators == [0]
    assert pre.fill[0] == pytest.approx(float(np.nanmedian(x[:, 0])))  # all rows train here
    loaded = load_model(result.model.to_bytes())
    np.testing.assert_array_equal(loaded.preprocessor.fill, pre.fill)
    assert loaded.preprocessor.indicators == [0]
    probe = np.array([[np.nan, 2.0], [np.nan, -2.0]])
    np.testing.assert_allclose(loaded.predict_proba(probe), result.model.predict_proba(probe))
    assert loaded.predict(probe).tolist() == [1, 0]  # the other feature decides


def test_models_saved_before_imputation_still_load() -> None:
    old = {
        "feature_names": ["a"], "feature_types": ["numeric"], "categories": [],
        "mean": np.array([1.0]), "scale": np.array([2.0]),
    }  # fmt: skip
    pre = Preprocessor.from_json(old)
    assert pre.fill.tolist() == [0.0] and pre.indicators == [] and pre.n_inputs == 1
    assert pre.transform(np.array([[NAN]]), dtype="float64")[0, 0] == -0.5  # (0 - 1) / 2


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_fill_and_indicators_come_from_the_training_rows_of_a_seeded_split(task: str) -> None:
    n, seed, fraction = 48, 11, 0.25
    rng = np.random.default_rng(5)
    y: np.ndarray = (
        rng.normal(size=n) if task == "regression" else np.array(["p", "q", "r"] * (n // 3))
    )
    # The training rows, found as the trainer finds them: its split stream of the seed, and
    # the strata of the encoded classes (sorted) when classifying.
    _, split_seq, _ = np.random.SeedSequence(seed).spawn(3)
    codes = None if task == "regression" else np.unique(y, return_inverse=True)[1]
    train_idx, val_idx = split_indices(n, codes, fraction, np.random.default_rng(split_seq))
    assert len(val_idx) == 12
    x = np.column_stack([np.arange(n, dtype=np.float64), rng.normal(size=n), rng.normal(size=n)])
    x[val_idx, 0] += 1_000.0  # validation rows pull the all-rows median of column a far up
    x[train_idx[:3], 0] = np.nan  # gaps in training rows (and one in validation)
    x[val_idx[0], 0] = np.nan
    x[val_idx[:4], 1] = np.nan  # gaps only in validation rows: no indicator for b
    spec = {"layers": [{"units": 4}], "epochs": 1, "validation_split": fraction, "seed": seed}
    pre = train(x, y, spec).model.preprocessor
    expected = np.nanmedian(x[train_idx], axis=0)
    np.testing.assert_allclose(pre.fill, expected)
    assert abs(float(np.nanmedian(x[:, 0])) - expected[0]) > 5  # not the all-rows median
    assert pre.fill[1] != pytest.approx(float(np.nanmedian(x[:, 1])))
    assert pre.indicators == [0]  # a only: b's gaps are all in validation rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_finite_rows_shortcut_standardizes_as_the_general_path(dtype: str) -> None:
    """Plain numeric rows that are all finite take a shortcut (Preprocessor._standardize_finite);
    with a ones column (augment) they take the general path: the same numbers, bit for bit. A
    NaN or an infinity takes the general path: imputed, or refused by name."""
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 4)) * [1.0, 10.0, 1e3, 1e-3]
    names = ["a", "b", "c", "d"]
    pre = Preprocessor.fit(x, feature_names=names, feature_types=[NUM] * 4, standardize=True)
    assert pre._plain
    for rows in (x, x[:1], np.full((2, 4), -1e30)):
        fast = pre.transform(rows, dtype=dtype)
        general = pre.transform(rows, dtype=dtype, augment=True)[:, :-1]
        assert fast.dtype == general.dtype == np.dtype(dtype)
        assert fast.tobytes() == general.tobytes()
    gap = x[:2].copy()
    gap[1, 2] = NAN
    filled = pre.transform(gap, dtype="float64")
    assert filled[1, 2] == (pre.fill[2] - pre.mean[2]) / pre.scale[2]
    gap[1, 2] = np.inf
    with pytest.raises(InputError, match=r"row 1, feature 'c'"):
        pre.transform(gap)
