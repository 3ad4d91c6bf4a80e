"""Warm start: a run that begins from a trained model's weights (`train(..., init_model=)`).

The new run reuses the model's fitted preprocessing (its standardization, imputation and
one-hot categories, its label encoder and target scaler) rather than fitting them again on the
new data, so that every weight keeps meaning what it meant. What must match is checked up
front, each mismatch a SpecError naming it: the features (names and types, in order), the task,
the classes, the loss, the spec's preprocessing, and the layers (units, activation, alpha).
Training-only fields may differ: optimizer, schedule, dropout, l2, class weights, epochs...
The dtype may differ too (the weights are cast). Use the same seed and validation_split to keep
the model's validation rows out of training.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import SpecError
from models.spec import TrainingSpec
from models.vocabulary import FeatureType, Task

if TYPE_CHECKING:
    from models.model import Model


def check_features(parent: Model, names: list[str], types: list[FeatureType]) -> None:
    if list(names) != parent.feature_names:
        raise SpecError(
            "init_model",
            f"the features differ: the model was trained on {parent.feature_names}, "
            f"the data has {list(names)}",
        )
    parent_types = [str(t) for t in parent.feature_types]
    if [str(t) for t in types] != parent_types:
        diffs = [
            f"{n!r} is {t} here, {p} in the model"
            for n, t, p in zip(names, types, parent_types, strict=True)
            if str(t) != p
        ]
        raise SpecError("init_model", "the feature types differ: " + "; ".join(diffs))


def check_spec(parent: Model, spec: TrainingSpec) -> None:
    """The resolved spec against the model's: task, loss, preprocessing and layers."""
    old = parent.spec
    if spec.task != parent.task:
        raise SpecError("task", f"the model is a {parent.task.value} model, this run {spec.task}")
    if spec.loss != old.loss:
        raise SpecError("loss", f"the model was trained with {old.loss}, this spec has {spec.loss}")
    if spec.preprocessing != old.preprocessing:
        raise SpecError(
            "preprocessing",
            f"the model's preprocessing is {old.preprocessing.model_dump()} (a warm start "
            f"reuses it), this spec has {spec.preprocessing.model_dump()}",
        )
    if len(spec.layers) != len(old.layers):
        raise SpecError(
            "layers", f"the model has {len(old.layers)} hidden layers, this spec {len(spec.layers)}"
        )
    for i, (new, was) in enumerate(zip(spec.layers, old.layers, strict=True)):
        for name in ("units", "activation", "alpha"):
            if getattr(new, name) != getattr(was, name):
                raise SpecError(
                    f"layers.{i}.{name}",
                    f"the model's layer {i} has {name} {getattr(was, name)!r}, "
                    f"this spec {getattr(new, name)!r}",
                )


def check_classes(parent: Model, task: Task, classes: list[Any] | None) -> None:
    if task != "classification" or parent.classes is None or classes is None:
        return
    if classes != parent.classes:
        extra = [c for c in classes if c not in parent.classes]
        absent = [c for c in parent.classes if c not in classes]
        parts = ([f"new here: {extra}"] if extra else []) + (
            [f"absent here: {absent}"] if absent else []
        )
        raise SpecError("init_model", "the classes differ from the model's: " + "; ".join(parts))


def marker(parent: Model) -> dict[str, Any]:
    """What a warm-started TrainingState records of its init_model, for resume to check."""
    theta = np.ascontiguousarray(parent.network.theta)
    return {
        "epochs": parent.epochs_trained,
        "weights_crc32": f"{zlib.crc32(theta.data):08x}",
    }
