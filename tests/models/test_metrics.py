"""models/metrics.py against scikit-learn: binary with tied scores, multi-class with a missing
class, degenerate inputs, and a hypothesis property test over small random problems."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from models.metrics import (
    METRIC_MODES,
    classification_metrics,
    per_class_report,
    regression_metrics,
    top_k_accuracy,
)

TOL = 1e-9


def sk_top_k(proba, labels, k):
    """sklearn breaks ties towards the higher index; ours towards the lower one. Reversing the
    column order (and relabelling) turns one rule into the other."""
    n_classes = proba.shape[1]
    return sk.top_k_accuracy_score(
        n_classes - 1 - labels, proba[:, ::-1], k=k, labels=np.arange(n_classes)
    )


def sk_classification(proba, labels):
    n_classes = proba.shape[1]
    predicted = proba.argmax(axis=1)
    expected = {
        "accuracy": sk.accuracy_score(labels, predicted),
        "log_loss": sk.log_loss(labels, proba, labels=np.arange(n_classes)),
        "f1": sk.f1_score(labels, predicted, average="macro", zero_division=0),
    }
    present = np.unique(labels)
    if present.size >= 2:
        if n_classes == 2:
            expected["auc"] = sk.roc_auc_score(labels, proba[:, 1])
        else:
            expected["auc"] = np.mean([sk.roc_auc_score(labels == c, proba[:, c]) for c in present])
    if n_classes > 5:
        expected["top_5_accuracy"] = sk_top_k(proba, labels, 5)
    return expected


def assert_matches_sklearn(proba, labels):
    got = classification_metrics(proba, labels)
    expected = sk_classification(proba, labels)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert type(got[key]) is float, key
        assert got[key] == pytest.approx(value, abs=TOL, rel=0), key
    return got


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tied_proba(rng, n, n_classes, levels=3):
    """Small integer logits: many rows and many entries within a row tie exactly."""
    return softmax(rng.integers(0, levels, size=(n, n_classes)).astype(np.float64))


@pytest.mark.parametrize("seed", range(4))
def test_binary_with_tied_scores(seed):
    rng = np.random.default_rng(seed)
    n = 500
    p1 = rng.integers(0, 11, n) / 10.0  # 11 distinct scores, exactly 0, 0.5 and 1 included
    labels = (rng.random(n) < 0.3 + 0.4 * p1).astype(np.int64)
    proba = np.column_stack([1.0 - p1, p1])
    got = assert_matches_sklearn(proba, labels)
    assert "top_5_accuracy" not in got
    # argmax takes the first index on a tie: p1 == 0.5 predicts class 0.
    assert got["accuracy"] == np.mean((p1 > 0.5) == labels)


@pytest.mark.parametrize("n_classes", [3, 10])
@pytest.mark.parametrize("tied", [False, True])
def test_multiclass_with_a_missing_class(n_classes, tied):
    rng = np.random.default_rng(n_classes)
    n = 600
    logits = rng.standard_normal((n, n_classes))
    proba = tied_proba(rng, n, n_classes) if tied else softmax(2 * logits)
    labels = rng.integers(0, n_classes - 1, n)  # the last class never occurs
    labels[: n // 3] = proba[: n // 3].argmax(axis=1)  # some skill; may include the last class
    labels[labels == n_classes - 1] = 0
    assert_matches_sklearn(proba, labels)


@pytest.mark.parametrize("n_classes", [3, 10])
def test_multiclass_auc_is_sklearns_ovr_when_every_class_occurs(n_classes):
    rng = np.random.default_rng(7)
    proba = tied_proba(rng, 400, n_classes)
    labels = rng.integers(0, n_classes, 400)
    expected = sk.roc_auc_score(labels, proba, multi_class="ovr", average="macro")
    assert classification_metrics(proba, labels)["auc"] == pytest.approx(expected, abs=TOL)


def test_many_classes_most_of_them_absent():
    rng = np.random.default_rng(1)
    n, n_classes = 3000, 1000
    # 40 classes occur (sklearn takes a few ms per binary AUC); predictions spread over all.
    labels = rng.choice(rng.permutation(n_classes)[:40], n)
    logits = 3 * rng.standard_normal((n, n_classes))
    logits[np.arange(n // 2), labels[: n // 2]] += 6  # some skill
    proba = softmax(logits)
    assert_matches_sklearn(proba, labels)


@pytest.mark.filterwarnings("error")
def test_all_predictions_one_class_and_exact_zeros_and_ones():
    proba = np.array([[1.0, 0.0, 0.0]] * 6)
    labels = np.array([0, 1, 2, 0, 1, 0])
    got = classification_metrics(proba, labels)
    eps = np.finfo(np.float64).eps
    assert got["log_loss"] == pytest.approx(-(3 * np.log(1 - eps) + 3 * np.log(eps)) / 6)
    assert got["auc"] == 0.5  # every score tied within each class
    assert got["f1"] == pytest.approx((2 * 3 / (3 + 6)) / 3)  # classes 1, 2: f1 = 0
    with np.errstate(all="raise"):
        report = per_class_report(proba, labels, ["a", "b", "c"])
    assert report["precision"] == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert report["recall"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert report["confusion_matrix"] == [[3, 0, 0], [2, 0, 0], [1, 0, 0]]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n_classes", [2, 7])
def test_one_class_in_labels_omits_auc(n_classes):
    rng = np.random.default_rng(0)
    proba = softmax(rng.standard_normal((50, n_classes)))
    labels = np.ones(50, dtype=np.int64)
    got = classification_metrics(proba, labels)
    assert "auc" not in got
    assert all(np.isfinite(v) for v in got.values())
    assert got["f1"] == pytest.approx(
        sk.f1_score(labels, proba.argmax(axis=1), average="macro", zero_division=0), abs=TOL
    )


@pytest.mark.filterwarnings("error")
def test_a_single_row():
    got = classification_metrics(np.array([[0.25, 0.75]]), np.array([1]))
    assert got == {"accuracy": 1.0, "log_loss": pytest.approx(-np.log(0.75)), "f1": 1.0}


def test_bad_inputs_raise():
    good = np.full((3, 2), 0.5)
    cases = [
        (np.empty((0, 3)), np.empty(0, dtype=np.int64)),
        (np.full((3, 1), 1.0), np.zeros(3, dtype=np.int64)),
        (good, np.zeros(2, dtype=np.int64)),
        (good, np.array([0, 1, 2])),
        (good, np.array([0, -1, 1])),
        (good, np.array([0.0, 1.0, 1.0])),
        (np.array([[0.5, np.nan]] * 3), np.zeros(3, dtype=np.int64)),
        (np.array([[1.5, -0.5]] * 3), np.zeros(3, dtype=np.int64)),
    ]
    for proba, labels in cases:
        with pytest.raises(ValueError):
            classification_metrics(proba, labels)
    with pytest.raises(ValueError):
        per_class_report(good, np.zeros(3, dtype=np.int64), ["a", "a"])
    with pytest.raises(ValueError):
        top_k_accuracy(good, np.zeros(3, dtype=np.int64), 0)
    with pytest.raises(ValueError):
        regression_metrics(np.empty((0, 1)), np.empty((0, 1)))
    with pytest.raises(ValueError):
        regression_metrics(np.zeros((3, 2)), np.zeros((3, 1)))


def test_top_k_ties_go_to_the_lower_index():
    proba = np.array([[0.4, 0.3, 0.3, 0.0], [0.4, 0.3, 0.3, 0.0], [0.25] * 4])
    labels = np.array([1, 2, 3])
    assert top_k_accuracy(proba, labels, 1) == 0.0
    assert top_k_accuracy(proba, labels, 2) == pytest.approx(1 / 3)  # class 1 beats 2 on a tie
    assert top_k_accuracy(proba, labels, 3) == pytest.approx(2 / 3)
    assert top_k_accuracy(proba, labels, 4) == 1.0
    assert top_k_accuracy(proba, labels, 10) == 1.0
    rng = np.random.default_rng(3)
    proba = tied_proba(rng, 300, 8, levels=2)
    labels = rng.integers(0, 8, 300)
    accuracy = classification_metrics(proba, labels)["accuracy"]
    assert top_k_accuracy(proba, labels, 1) == accuracy
    for k in range(1, 8):
        assert top_k_accuracy(proba, labels, k) == pytest.approx(sk_top_k(proba, labels, k))


def test_per_class_report_matches_sklearn():
    rng = np.random.default_rng(5)
    proba = tied_proba(rng, 300, 4)
    labels = rng.integers(0, 3, 300)  # class "d" never occurs
    names = ["a", "b", "c", "d"]
    report = per_class_report(proba, labels, names)
    predicted = proba.argmax(axis=1)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predicted, labels=np.arange(4), zero_division=0
    )
    for key, values in [("precision", precision), ("recall", recall), ("f1", f1)]:
        assert list(report[key]) == names
        np.testing.assert_allclose(list(report[key].values()), values, atol=TOL, rtol=0)
    assert list(report["support"].values()) == support.tolist()
    expected_cm = sk.confusion_matrix(labels, predicted, labels=np.arange(4)).tolist()
    assert report["confusion_matrix"] == expected_cm
    assert json.loads(json.dumps(report)) == report
    scalars = [v for key in ("precision", "recall", "f1") for v in report[key].values()]
    assert all(type(v) is float for v in scalars)
    assert all(type(v) is int for v in report["support"].values())
    assert all(type(v) is int for row in report["confusion_matrix"] for v in row)


@pytest.mark.parametrize("shape", [(200,), (200, 1), (200, 3)])
def test_regression_matches_sklearn(shape):
    rng = np.random.default_rng(len(shape))
    y = rng.standard_normal(shape) * 10 + 3
    pred = y + rng.standard_normal(shape) * 4
    got = regression_metrics(pred, y)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), abs=TOL)
    assert got["rmse"] == pytest.approx(sk.root_mean_squared_error(y, pred), abs=TOL)
    assert got["r2"] == pytest.approx(sk.r2_score(y, pred), abs=TOL)
    assert all(type(v) is float for v in got.values())


@pytest.mark.filterwarnings("error")
def test_regression_constant_target_r2_is_zero():
    y = np.column_stack([np.full(50, 0.1), np.linspace(0, 1, 50)])
    pred = y.copy()
    got = regression_metrics(pred, y)
    assert got["r2"] == 0.5  # the constant column counts 0.0 even when perfect (sklearn: 1.0)
    assert got["mae"] == 0.0 and got["rmse"] == 0.0
    assert regression_metrics(np.full(5, 2.0), np.full(5, 3.0))["r2"] == 0.0
    assert sk.r2_score(np.full(5, 3.0), np.full(5, 2.0)) == 0.0  # sklearn agrees if imperfect


def test_metric_modes():
    """Losses and errors are minimised, every score maximised: one rule for all the keys."""
    minimised = {k for k, mode in METRIC_MODES.items() if mode == "min"}
    assert minimised == {"val_loss", "val_log_loss", "val_mae", "val_rmse", "train_loss"}
    assert set(METRIC_MODES.values()) == {"min", "max"}


@st.composite
def problems(draw):
    n = draw(st.integers(1, 30))
    n_classes = draw(st.integers(2, 8))
    # Small integer weights: exact zeros, exact ones and ties are all common.
    weights = np.array(
        draw(st.lists(st.integers(0, 3), min_size=n * n_classes, max_size=n * n_classes)),
        dtype=np.float64,
    ).reshape(n, n_classes)
    weights[weights.sum(axis=1) == 0] = 1.0
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    return weights / weights.sum(axis=1, keepdims=True), labels.astype(np.int64)


@settings(max_examples=80, deadline=None)
@given(problems())
def test_property_matches_sklearn(problem):
    proba, labels = problem
    assert_matches_sklearn(proba, labels)
    n_classes = proba.shape[1]
    if n_classes > 2:
        for k in (1, 2, n_classes - 1):
            assert top_k_accuracy(proba, labels, k) == pytest.approx(
                sk_top_k(proba, labels, k), abs=TOL
            )


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(lambda t: (t[0] / 2, t[1] / 2)),
        min_size=2,
        max_size=20,
    )
)
def test_property_regression_matches_sklearn(pairs):
    y, pred = np.array(pairs).T
    got = regression_metrics(pred, y)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), abs=TOL)
    assert got["rmse"] == pytest.approx(sk.root_mean_squared_error(y, pred), abs=TOL)
    if y.min() < y.max():
        assert got["r2"] == pytest.approx(sk.r2_score(y, pred), abs=TOL)
    else:
        assert got["r2"] == 0.0
