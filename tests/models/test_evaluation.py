"""The metrics a run reports: per epoch on the validation split, and on the final model,
checked against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from models import train
from models.evaluation import AUC_BUDGET
from models.metrics import METRIC_MODES, classification_metrics
from tests.models.conftest import small_spec


def test_each_epoch_reports_the_classification_metrics(digits) -> None:
    x, y = digits
    result = train(x, y, small_spec(epochs=3))
    for epoch in result.history:
        for key in ("val_loss", "val_accuracy", "val_log_loss", "val_f1", "val_auc"):
            assert 0.0 <= epoch[key] < 10.0, (key, epoch)
        assert epoch["val_top_5_accuracy"] >= epoch["val_accuracy"]
        assert set(epoch) - {"epoch", "learning_rate", "seconds"} <= set(METRIC_MODES) | {
            "val_top_5_accuracy"
        }
    # Without label smoothing or class weights the validation loss is the log-loss itself.
    last = result.history[-1]
    assert last["val_log_loss"] == pytest.approx(last["val_loss"], rel=1e-4)


def test_final_metrics_agree_with_scikit_learn() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    spec = small_spec(epochs=8, validation_split=0.3)
    result = train(x, y, spec)
    metrics = result.model.metrics
    assert metrics["split"] == "validation"
    proba = result.model.predict_proba(x)
    assert proba.shape == (len(x), 2)
    report = metrics["per_class"]
    assert set(report) == {"precision", "recall", "f1", "support"}
    assert sum(report["support"].values()) == metrics["n"]
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == metrics["n"]
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / metrics["n"])
    for name in ("0", "1"):
        i = int(name)
        tp = confusion[i, i]
        assert report["recall"][name] == pytest.approx(tp / confusion[i].sum())
        assert report["precision"][name] == pytest.approx(tp / confusion[:, i].sum())
    # On every row, the engine's formulas give scikit-learn's figures for the same answers.
    ours = classification_metrics(proba, y.astype(np.int64))
    assert ours["log_loss"] == pytest.approx(log_loss(y, proba), rel=1e-9)
    assert ours["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]), rel=1e-9)
    assert ours["f1"] == pytest.approx(f1_score(y, proba.argmax(1), average="macro"), rel=1e-9)


def test_regression_epochs_and_final_metrics_are_in_the_labels_units() -> None:
    x, y = load_diabetes(return_X_y=True)
    result = train(x, y, small_spec(epochs=5, optimizer={"name": "adam", "learning_rate": 0.01}))
    for epoch in result.history:
        assert {"val_mae", "val_rmse", "val_r2"} <= set(epoch)
        assert epoch["val_rmse"] >= epoch["val_mae"] > 1.0  # label units (25 to 346), not z-scores
    pred = result.model.predict(x)
    # predicted_vs_actual pairs are (actual, predicted) from the final model.
    actual, predicted = np.array(result.model.metrics["predicted_vs_actual"]).T
    assert np.isin(actual, y).all()
    # Each is one of the final model's predictions, at float32 precision (a validation batch
    # and the whole set go through different GEMM kernels, which round differently).
    gaps = np.abs(predicted[:, None] - pred.reshape(1, -1)).min(axis=1)
    assert (gaps <= 1e-5 * np.abs(predicted)).all(), gaps.max()
    assert r2_score(y, pred) > 0.0 and mean_absolute_error(y, pred) < y.std()


@pytest.mark.parametrize("monitor", ["val_auc", "val_f1", "val_log_loss"])
def test_early_stopping_watches_the_new_metrics(monitor: str) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    spec = small_spec(
        epochs=60,
        optimizer={"name": "adam", "learning_rate": 0.01},
        early_stopping={"monitor": monitor, "patience": 2},
    )
    result = train(x, y, spec)
    assert result.stop_reason == "early_stopping", [h[monitor] for h in result.history]
    values = [h[monitor] for h in result.history]
    best = (max if METRIC_MODES[monitor] == "max" else min)(values)
    # Stopped `patience` epochs after the best one (min_delta 0: the first best counts).
    assert values.index(best) == len(values) - 3


def test_auc_is_left_out_of_large_epochs_unless_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    monkeypatch.setattr("models.evaluation.AUC_BUDGET", 10)
    assert AUC_BUDGET > 10
    plain = train(x, y, small_spec(epochs=2))
    assert all("val_auc" not in h for h in plain.history)
    watched = train(x, y, small_spec(epochs=2, early_stopping={"monitor": "val_auc"}))
    assert all("val_auc" in h for h in watched.history)
    assert "auc" in plain.model.metrics  # the final model always gets it
