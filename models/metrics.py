"""Evaluation metrics in numpy, cheap enough to run on the validation split after every epoch.

Inputs: `proba` is (n, K) class probabilities with K >= 2 (a binary model passes both columns),
`labels` is (n,) class indices in 0..K-1. The predicted class is `proba.argmax(axis=1)`, so a
tie goes to the lowest class index. Python loops run over classes (and over row chunks in
top-k, to bound memory), never over single rows; every result is a plain Python float/int.

The definitions follow scikit-learn 1.9 (the tests compare against it), except where noted:

- log loss clips to [eps, 1 - eps] with eps = float64 machine epsilon (~2.2e-16), as current
  sklearn does (it used to be a fixed 1e-15), and does not renormalise rows.
- AUC is the Mann-Whitney U statistic with midranks for tied scores, which equals sklearn's
  trapezoidal ROC area. Multi-class AUC is the macro one-vs-rest mean over the classes present
  in `labels` (sklearn would instead return NaN if a column's class never occurs).
- top-k accuracy breaks ties at the k-th place towards the lower class index, like argmax, so
  top-1 accuracy equals accuracy; sklearn's `top_k_accuracy_score` favours the higher index.
- r2 is 0.0 for a constant target column, even for perfect predictions (sklearn: 1.0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.spec import monitor_mode
from models.types import Array

# Current sklearn clips log-loss probabilities to the dtype's machine epsilon.
_EPS = float(np.finfo(np.float64).eps)
# top-k builds a few boolean (rows, K) masks; this bounds them to about 4 MB each.
_TOP_K_CHUNK_ELEMENTS = 1 << 22

# Every history key the trainer may record, and whether a larger value is better (the rule is
# models.spec.monitor_mode's, which early stopping and the plateau schedule use).
HISTORY_METRICS = (
    "val_loss", "val_accuracy", "val_log_loss", "val_f1", "val_auc", "val_mae", "val_rmse",
    "val_r2", "val_top_5_accuracy", "train_loss", "train_accuracy",
)  # fmt: skip
METRIC_MODES: dict[str, str] = {key: monitor_mode(key) for key in HISTORY_METRICS}


def _check_classification(proba: Array, labels: Array) -> tuple[Array, Array]:
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"proba must have shape (n, K) with K >= 2, got {proba.shape}")
    n, k = proba.shape
    if n == 0:
        raise ValueError("no samples to evaluate")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}")
    low, high = proba.min(), proba.max()
    if not (low >= 0.0 and high <= 1.0):  # also false for NaN
        raise ValueError("proba must be finite probabilities in [0, 1]")
    return proba, labels


def _counts(proba: Array, labels: Array) -> tuple[Array, Array, Array, Array]:
    """Predicted classes, and per class: true positives, support, number predicted."""
    k = proba.shape[1]
    predicted = proba.argmax(axis=1)
    tp = np.bincount(labels[predicted == labels], minlength=k)
    return predicted, tp, np.bincount(labels, minlength=k), np.bincount(predicted, minlength=k)


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, with 0.0 where the denominator is 0 (zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _binary_auc(score: Array, positive: Array) -> float:
    """ROC AUC of `score` for the boolean `positive`; both classes must occur.

    U counts (positive, negative) pairs ordered correctly, ties as half. For a sorted group Q of
    m values ranked within all n scores, sum over Q of (#scores < q) + (#scores <= q) equals
    2 * U_Q + m^2, so 2U is an exact integer. Q is the smaller class (fewer queries); the cost
    is one sort of n scores plus O(m log n).
    """
    n_pos = int(np.count_nonzero(positive))
    n_neg = int(score.shape[0]) - n_pos
    flip = n_neg < n_pos
    query = np.sort(score[~positive] if flip else score[positive])
    everything = np.sort(score)
    below = np.searchsorted(everything, query, side="left")
    at_or_below = np.searchsorted(everything, query, side="right")
    twice_u = int(below.sum()) + int(at_or_below.sum()) - int(query.shape[0]) ** 2
    if flip:  # U of the negatives; the positives' U is the rest of the pairs
        twice_u = 2 * n_pos * n_neg - twice_u
    return twice_u / (2 * n_pos * n_neg)


def _auc(proba: Array, labels: Array, support: Array) -> float | None:
    present = np.flatnonzero(support)
    if present.shape[0] < 2:
        return None
    if proba.shape[1] == 2:
        return _binary_auc(proba[:, 1], labels == 1)
    # One-vs-rest: every present class has negatives too, since at least two are present.
    # Cost: one sort of a column per present class, O(K n log n) in all.
    scores = [_binary_auc(proba[:, c], labels == c) for c in present.tolist()]
    return float(np.mean(scores))


def _top_k(proba: Array, labels: Array, k: int) -> float:
    n, n_classes = proba.shape
    if k >= n_classes:
        return 1.0
    columns = np.arange(n_classes)
    rows = max(1, _TOP_K_CHUNK_ELEMENTS // n_classes)
    hits = 0
    for start in range(0, n, rows):
        p, y = proba[start : start + rows], labels[start : start + rows]
        true_score = p[np.arange(y.shape[0]), y][:, None]
        # Classes ranked ahead of the true one: a higher score, or an equal score and a lower
        # index (argmax's tie rule). No sort needed: O(n K) instead of O(n K log K).
        ahead = p > true_score
        ahead |= (p == true_score) & (columns < y[:, None])
        hits += int(np.count_nonzero(np.count_nonzero(ahead, axis=1) < k))
    return hits / int(n)


def top_k_accuracy(proba: Array, labels: Array, k: int) -> float:
    """Fraction of rows whose true class is among the k highest probabilities.

    Ties at the k-th place go to the lower class index, as argmax does, so k=1 gives accuracy.
    """
    proba, labels = _check_classification(proba, labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return _top_k(proba, labels, k)


def classification_metrics(proba: Array, labels: Array, *, auc: bool = True) -> dict[str, float]:
    """accuracy, log_loss, macro f1, auc (if asked and 2+ classes occur in labels: it sorts the
    scores once per class), top_5_accuracy (K > 5)."""
    proba, labels = _check_classification(proba, labels)
    n, k = proba.shape
    _, tp, support, n_predicted = _counts(proba, labels)
    p_true = np.clip(proba[np.arange(n), labels], _EPS, 1.0 - _EPS)
    # Macro F1 over classes that occur in labels or predictions; 2tp+fp+fn = support+predicted.
    seen = (support + n_predicted) > 0
    f1 = 2.0 * tp[seen] / (support[seen] + n_predicted[seen])
    metrics = {
        "accuracy": int(tp.sum()) / n,
        "log_loss": float(-np.log(p_true).mean()),
        "f1": float(f1.mean()),
    }
    roc_auc = _auc(proba, labels, support) if auc else None
    if roc_auc is not None:
        metrics["auc"] = roc_auc
    if k > 5:
        metrics["top_5_accuracy"] = _top_k(proba, labels, 5)
    return metrics


def per_class_report(proba: Array, labels: Array, class_names: list[str]) -> dict[str, Any]:
    """Per-class precision, recall, f1 and support, and the confusion matrix (rows true)."""
    proba, labels = _check_classification(proba, labels)
    k = proba.shape[1]
    if len(class_names) != k or len(set(class_names)) != k:
        raise ValueError(f"class_names must be {k} distinct names, got {class_names!r}")
    predicted, tp, support, n_predicted = _counts(proba, labels)
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    columns = {
        "precision": _ratio(tp, n_predicted),
        "recall": _ratio(tp, support),
        "f1": _ratio(2 * tp, support + n_predicted),
    }
    report: dict[str, Any] = {
        key: dict(zip(class_names, values.tolist(), strict=True)) for key, values in columns.items()
    }
    report["support"] = dict(zip(class_names, support.tolist(), strict=True))
    report["confusion_matrix"] = confusion.tolist()
    return report


def regression_metrics(pred: Array, y: Array) -> dict[str, float]:
    """mae, rmse and r2, each averaged uniformly over output columns (sklearn's default).

    rmse is the mean of per-column RMSEs, as sklearn's `root_mean_squared_error` (the trainer's
    old version pooled all columns for rmse and r2). r2 of a constant column (min == max) is
    0.0 whatever the predictions, as the trainer always did; sklearn gives 1.0 if perfect.
    """
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if pred.ndim == 0 or y.ndim == 0 or y.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    pred, y = pred.reshape(pred.shape[0], -1), y.reshape(y.shape[0], -1)
    if pred.shape != y.shape:
        raise ValueError(f"pred and y shapes differ: {pred.shape} vs {y.shape}")
    if not (np.isfinite(pred).all() and np.isfinite(y).all()):
        raise ValueError("pred and y must be finite")
    squared = (pred - y) ** 2
    ss_res = squared.sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    # min == max, not ss_tot == 0: the mean of a constant column can be off by rounding.
    undefined = (y.min(axis=0) == y.max(axis=0)) | (ss_tot == 0.0)
    r2 = np.where(undefined, 0.0, 1.0 - ss_res / np.where(undefined, 1.0, ss_tot))
    return {
        "mae": float(np.abs(pred - y).mean()),
        "rmse": float(np.sqrt(squared.mean(axis=0)).mean()),
        "r2": float(r2.mean()),
    }
