"""Evaluation of a network: the validation metrics of every epoch, and the final model's.

Classification: accuracy, log-loss, macro F1, ROC AUC (binary, or macro one-vs-rest) and
top-5 accuracy when there are more than 5 classes; the final model adds per-class precision,
recall and F1 and the confusion matrix. Regression: mae, rmse and r2 in the label's own units.
The formulas are models.metrics'; this module feeds them the network's outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.losses import Loss, make_loss
from models.metrics import classification_metrics, per_class_report, regression_metrics
from models.model import Model
from models.network import Network
from models.prepared import PreparedData
from models.types import Array

EVAL_CHUNK = 8192
# ROC AUC sorts the scores once per class: above this many scores (rows x classes) an epoch's
# validation skips it unless early stopping or the plateau schedule watches it.
AUC_BUDGET = 2_000_000
_PLOT_POINTS = 500


def predicted_classes(z: Array) -> Array:
    return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1)


def store_predictions(z_fm: Array, out: Array) -> None:
    """predicted_classes of feature-major logits (K, n), written into `out` (n,) int64."""
    # A plain argmax and a copy cost less than argmax(out=) on a small batch.
    out[...] = z_fm[0] > 0 if z_fm.shape[0] == 1 else z_fm.argmax(axis=0)


def evaluate_validation(
    net: Network, loss_fn: Loss, data: PreparedData, *, monitored: frozenset[str] = frozenset()
) -> dict[str, float]:
    """The validation split's loss and metrics, keyed without the ``val_`` prefix."""
    loss_sum, outputs = 0.0, []
    for i in range(0, data.x_val.shape[0], EVAL_CHUNK):
        z = net.logits(data.x_val[i : i + EVAL_CHUNK])
        value, _ = loss_fn.value_and_grad(z, data.t_val[i : i + EVAL_CHUNK])  # z stays intact
        loss_sum += value * z.shape[0]
        outputs.append(z)
    n = data.x_val.shape[0]
    metrics = {"loss": loss_sum / n}
    z_all = np.concatenate(outputs)
    if data.labels_val is not None:
        proba = loss_fn.outputs(z_all)
        with_auc = proba.size <= AUC_BUDGET or "val_auc" in monitored
        metrics.update(classification_metrics(proba, data.labels_val, auc=with_auc))
    elif data.target_scaler is not None and data.y_val is not None:
        metrics.update(regression_metrics(data.target_scaler.inverse(z_all), data.y_val))
    return metrics


def final_metrics(model: Model, data: PreparedData) -> dict[str, Any]:
    """The trained model on the validation split (else the training split): the epoch
    metrics, plus per-class figures and the confusion matrix, or a predicted-vs-actual plot."""
    on_validation = data.x_val.shape[0] > 0
    x = data.x_val if on_validation else data.x_train[:, :-1]
    z = model.network.logits(x)
    metrics: dict[str, Any] = {"split": "validation" if on_validation else "train", "n": len(x)}
    if data.label_encoder is not None:
        labels = data.labels_val if on_validation else data.labels_train
        assert labels is not None and model.spec.loss is not None
        proba = make_loss(model.spec.loss).outputs(z)
        names = [str(c) for c in data.label_encoder.classes]
        metrics.update(classification_metrics(proba, labels))
        report = per_class_report(proba, labels, names)
        metrics["confusion_matrix"] = report.pop("confusion_matrix")
        metrics["per_class"] = report
    elif data.target_scaler is not None:
        y = data.y_val if on_validation else data.target_scaler.inverse(data.t_train)
        assert y is not None
        predicted = data.target_scaler.inverse(z)
        metrics.update(regression_metrics(predicted, y))
        # Enough points for a predicted-vs-actual plot; evenly spaced, so it is deterministic.
        picks = np.linspace(0, len(y) - 1, min(len(y), _PLOT_POINTS)).round().astype(np.int64)
        actual = y.reshape(len(y), -1)[picks, 0]
        metrics["predicted_vs_actual"] = [
            [float(a), float(p)] for a, p in zip(actual, predicted[picks, 0], strict=True)
        ]
    return metrics
