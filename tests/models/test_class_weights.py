"""class_weight: per-sample loss weights by class, named as the labels spell them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from models import SpecError, train
from models.prepared import prepare_data
from models.spec import TrainingSpec
from tests.models.conftest import small_spec


def prepared(x, y, **spec):
    data, _ = prepare_data(
        x,
        y,
        TrainingSpec.model_validate(small_spec(**spec)),
        feature_names=None,
        feature_types=None,
        split_rng=np.random.default_rng(0),
    )
    return data


def test_balanced_weights_count_the_training_split() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    y = np.array(["cat"] * 80 + ["dog"] * 20)
    data = prepared(x, y, class_weight="balanced")
    assert data.w_train is not None and data.labels_train is not None
    counts = np.bincount(data.labels_train)
    assert counts.tolist() == [64, 16]  # the stratified 80 %
    expected = len(data.labels_train) / (2 * counts)  # scikit-learn's "balanced"
    np.testing.assert_allclose(data.w_train[:, 0], expected[data.labels_train], rtol=1e-6)
    assert np.mean(data.w_train) == pytest.approx(1.0)
    named = prepared(x, y, class_weight={"dog": 4.0})
    assert named.w_train is not None
    assert sorted(set(named.w_train[:, 0].tolist())) == [1.0, 4.0]
    assert prepared(x, y).w_train is None  # off: nothing built, nothing to step through


def test_class_weight_misuse_is_named(iris) -> None:
    x, y = iris
    with pytest.raises(SpecError) as info:
        train(x, y, small_spec(class_weight={"3": 2.0}))
    assert info.value.field == "class_weight" and "'3'" in info.value.message
    assert "'0', '1', '2'" in info.value.message
    with pytest.raises(SpecError, match="classification runs only"):
        train(x, x[:, 0], small_spec(class_weight="balanced"))


def test_weights_of_one_change_nothing_but_rounding(iris) -> None:
    x, y = iris
    plain = train(x, y, small_spec())
    ones = train(x, y, small_spec(class_weight={"0": 1.0}))
    np.testing.assert_allclose(ones.model.network.theta, plain.model.network.theta, atol=1e-5)
    weighted = train(x, y, small_spec(class_weight={"0": 5.0}))
    assert not np.allclose(weighted.model.network.theta, plain.model.network.theta, atol=1e-3)
    # Validation metrics stay unweighted (as Keras): the loss of the same weights is the same.
    assert [h["val_loss"] for h in ones.history] == pytest.approx(
        [h["val_loss"] for h in plain.history], rel=1e-4
    )


def rare_malignant() -> tuple[np.ndarray, np.ndarray]:
    """breast_cancer with the malignant class (the positive one here) cut to 5 % of the rows."""
    x, y = load_breast_cancer(return_X_y=True)
    positive, negative = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    n_positive = round(0.05 * len(negative) / 0.95)
    keep = np.sort(
        np.concatenate([negative, np.random.default_rng(0).choice(positive, n_positive, False)])
    )
    return x[keep], (y[keep] == 0).astype(np.int64)


def test_balanced_class_weights_raise_rare_class_recall_at_about_the_same_accuracy() -> None:
    x, y = rare_malignant()
    assert y.mean() == pytest.approx(0.05, abs=0.002)
    scores: dict[str, list[tuple[float, float]]] = {"none": [], "balanced": []}
    # 3 splits x 2 seeds: about 9 positives per test half, so one split alone is coarse.
    for split in range(3):
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=0.5, random_state=split, stratify=y
        )
        for seed in range(2):
            for name, weight in (("none", None), ("balanced", "balanced")):
                spec = {"layers": [{"units": 32}], "epochs": 30, "seed": seed}
                predicted = train(x_tr, y_tr, {**spec, "class_weight": weight}).model.predict(x_te)
                rare_recall = float(np.mean(predicted[y_te == 1] == 1))
                scores[name].append((rare_recall, float(np.mean(predicted == y_te))))
    recall = {k: float(np.mean([r for r, _ in v])) for k, v in scores.items()}
    accuracy = {k: float(np.mean([a for _, a in v])) for k, v in scores.items()}
    assert recall["balanced"] >= recall["none"] + 0.08, (recall, accuracy)
    assert accuracy["balanced"] >= accuracy["none"] - 0.01, (recall, accuracy)
