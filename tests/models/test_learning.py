"""The engine learns scikit-learn's bundled datasets to known quality (held-out rows)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

from models import train


def held_out(loader, **kw):
    x, y = loader(return_X_y=True)
    return train_test_split(x, y, test_size=0.2, random_state=0, **kw)


def test_digits_reaches_96_percent_with_the_reference_network() -> None:
    x_tr, x_te, y_tr, y_te = held_out(load_digits, stratify=load_digits().target)
    spec = {
        "layers": [{"units": 128, "activation": "relu"}, {"units": 64, "activation": "relu"}],
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        "batch_size": 32,
        "epochs": 50,
        "validation_split": 0.0,
        "initializer": "glorot_uniform",
    }
    accuracies = [
        float(np.mean(train(x_tr, y_tr, {**spec, "seed": s}).model.predict(x_te) == y_te))
        for s in range(2)
    ]
    assert min(accuracies) >= 0.96, accuracies


@pytest.mark.parametrize(
    ("loader", "minimum"), [(load_iris, 0.93), (load_wine, 0.94), (load_breast_cancer, 0.94)]
)
def test_default_spec_classifies_small_datasets(loader, minimum) -> None:
    x_tr, x_te, y_tr, y_te = held_out(loader, stratify=loader().target)
    result = train(x_tr, y_tr, {"layers": [{"units": 32}], "epochs": 50})
    assert np.mean(result.model.predict(x_te) == y_te) >= minimum
    probabilities = result.model.predict_proba(x_te)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert result.model.metrics["split"] == "validation"
    assert np.array(result.model.metrics["confusion_matrix"]).sum() == result.model.metrics["n"]


def test_binary_crossentropy_gives_two_column_probabilities() -> None:
    x_tr, x_te, y_tr, y_te = held_out(load_breast_cancer, stratify=load_breast_cancer().target)
    result = train(x_tr, y_tr, {"layers": [{"units": 16}], "loss": "binary_crossentropy"})
    proba = result.model.predict_proba(x_te)
    assert proba.shape == (len(x_te), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(result.model.predict(x_te) == y_te) >= 0.94


def test_diabetes_regression_explains_variance_in_label_units() -> None:
    x_tr, x_te, y_tr, y_te = held_out(load_diabetes)
    spec = {
        "layers": [{"units": 32, "activation": "tanh"}],
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "epochs": 200,
        "early_stopping": {"patience": 10},
    }
    result = train(x_tr, y_tr, spec)
    assert result.spec.task == "regression" and result.model.classes is None
    predictions = result.model.predict(x_te)
    assert 25 < predictions.mean() < 300  # label units, not standardized ones
    # Diabetes is noisy: the known reference is ordinary least squares on the same split.
    linear = r2_score(y_te, LinearRegression().fit(x_tr, y_tr).predict(x_te))
    assert r2_score(y_te, predictions) >= linear - 0.1 > 0.2
    assert {"val_mae", "val_rmse", "val_r2"} <= set(result.history[-1])
    # The plot's points are the validation split itself (fewer than 500 rows): its R² is the
    # model's.
    metrics = result.model.metrics
    pairs = np.asarray(metrics["predicted_vs_actual"])
    assert pairs.shape == (metrics["n"], 2)
    assert r2_score(pairs[:, 0], pairs[:, 1]) == pytest.approx(metrics["r2"], abs=1e-6)


def test_string_labels_and_categorical_features_round_trip() -> None:
    rng = np.random.default_rng(0)
    n = 400
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    label = np.where((color == "red") | (size > 1.0), "cat", "dog")
    rows = np.empty((n, 2), dtype=object)
    rows[:, 0], rows[:, 1] = size, color
    result = train(
        rows, label, {"layers": [{"units": 16}], "epochs": 40}, feature_names=["size", "color"]
    )
    model = result.model
    assert model.classes == ["cat", "dog"]
    assert model.feature_types == ["numeric", "categorical"]
    assert model.predict([[0.0, "red"], [0.0, "green"]]).tolist() == ["cat", "dog"]
    assert model.predict_proba([[3.0, "blue"]])[0, 0] > 0.5
