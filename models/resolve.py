"""Resolving a spec: every default filled in, so that a stored spec says exactly what was trained.

`resolve_spec` applies the rules that depend on the data (task, loss, which metrics and class
names exist) and then `complete_spec`, the data-independent defaults. `complete_spec` is
idempotent and is also applied to a saved spec before a resume compares it, so that a spec
stored before a field existed still matches when its default means the old behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.activations import ALPHA_DEFAULTS
from models.errors import SpecError
from models.spec import (
    CLASSIFICATION_LOSSES,
    CLASSIFICATION_METRICS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_WEIGHT_DECAY,
    MAX_CLASSES,
    REGRESSION_LOSSES,
    REGRESSION_METRICS,
    TrainingSpec,
    parse_spec,
)
from models.vocabulary import Task

# A hidden layer's initializer when neither it nor the spec names one: Keras' Dense default,
# glorot_uniform, for every activation but SELU, whose self-normalization assumes lecun_normal.
# Not he_uniform for the ReLU family: measured on scikit-learn's datasets (1 and 4 hidden layers
# of 64, SGD and Adam, 20 epochs), Glorot matched or beat He in 26 of 28 cases, by up to 0.11 R²
# on regression (make_regression with Adam: 0.93 -> 0.99), where He's larger first-layer
# weights (fan_in 10 against Glorot's (10 + 64) / 2) hurt most.
AUTO_INITIALIZER: dict[str, str] = {
    "relu": "glorot_uniform",
    "leaky_relu": "glorot_uniform",
    "elu": "glorot_uniform",
    "gelu": "glorot_uniform",
    "silu": "glorot_uniform",
    "selu": "lecun_normal",
    "tanh": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "softplus": "glorot_uniform",
    "linear": "glorot_uniform",
}
# The output layer is linear (the loss fuses its activation): Glorot, as Keras' Dense default.
OUTPUT_INITIALIZER = "glorot_uniform"


def complete_spec(spec: TrainingSpec) -> TrainingSpec:
    """The data-independent defaults: learning rate, momentum and weight decay of the optimizer;
    each layer's alpha and initializer; the output initializer; huber_delta for huber."""
    opt = spec.optimizer
    momentum = opt.momentum if opt.momentum is not None else (0.9 if opt.name == "sgd" else 0.0)
    decay = opt.weight_decay
    layers = [
        layer.model_copy(
            update={
                "alpha": layer.alpha if layer.alpha is not None else ALPHA_DEFAULTS.get(name),
                "initializer": layer.initializer or spec.initializer or AUTO_INITIALIZER[name],
            }
        )
        for layer, name in ((layer, layer.activation) for layer in spec.layers)
    ]
    huber_delta = spec.huber_delta
    if huber_delta is None and spec.loss == "huber":
        huber_delta = 1.0
    return spec.model_copy(
        update={
            "layers": layers,
            "output_initializer": spec.output_initializer or spec.initializer or OUTPUT_INITIALIZER,
            "huber_delta": huber_delta,
            "optimizer": opt.model_copy(
                update={
                    "learning_rate": opt.learning_rate or DEFAULT_LEARNING_RATE[opt.name],
                    "momentum": momentum,
                    "weight_decay": DEFAULT_WEIGHT_DECAY.get(opt.name, 0.0)
                    if decay is None
                    else decay,
                }
            ),
        }
    )


def resolve_spec(
    spec: TrainingSpec | dict[str, Any] | None,
    *,
    task: Task,
    n_classes: int,
    numeric_labels: bool = True,
    classes: Sequence[Any] | None = None,
) -> TrainingSpec:
    """Fill every default and check the fields that depend on the data.

    `task` is what the data suggests, `n_classes` the number of distinct labels; `classes`
    (the labels, when known) lets a `class_weight` dict's names be checked here.
    """
    spec = parse_spec(spec)
    task = spec.task or task
    if task == "classification":
        if n_classes < 2:
            raise SpecError(
                "task", f"classification needs at least 2 classes, the label has {n_classes}"
            )
        if n_classes > MAX_CLASSES:
            raise SpecError(
                "task", f"{n_classes} distinct labels is too many classes (at most {MAX_CLASSES})"
            )
        loss = spec.loss or "categorical_crossentropy"
        if loss == "binary_crossentropy" and n_classes != 2:
            raise SpecError(
                "loss", f"binary_crossentropy needs 2 classes, the label has {n_classes}"
            )
    else:
        if not numeric_labels:
            raise SpecError("task", "regression needs a numeric label")
        loss = spec.loss or "mse"
    if loss not in (CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES):
        raise SpecError("loss", f"{loss!r} does not fit task {task!r}")
    if spec.label_smoothing and loss not in CLASSIFICATION_LOSSES:
        raise SpecError(
            "label_smoothing", f"applies to the cross-entropies, and this run's loss is {loss}"
        )
    if spec.huber_delta is not None and loss != "huber":
        raise SpecError("huber_delta", f"applies to the huber loss, and this run's loss is {loss}")
    if spec.class_weight is not None:
        if task != "classification":
            raise SpecError("class_weight", "class weights apply to classification runs only")
        if classes is not None and not isinstance(spec.class_weight, str):
            class_weights(spec.class_weight, classes)
    _check_monitors(spec, Task(task))
    return complete_spec(spec.model_copy(update={"task": Task(task), "loss": loss}))


def _check_monitors(spec: TrainingSpec, task: Task) -> None:
    wrong, other = (
        (REGRESSION_METRICS, "regression")
        if task == "classification"
        else (CLASSIFICATION_METRICS, "classification")
    )
    for field, monitor in spec.monitors().items():
        if monitor.removeprefix("val_").removeprefix("train_") in wrong:
            raise SpecError(field, f"{monitor} is a {other} metric, and this is a {task.value} run")


def class_weights(
    class_weight: str | Mapping[str, float],
    classes: Sequence[Any],
    counts: Sequence[int] | None = None,
) -> list[float]:
    """One weight per class, in `classes` order. "balanced" needs the training split's
    `counts`; a dict names classes as the labels spell them (JSON keys are strings)."""
    if isinstance(class_weight, str):  # "balanced", as scikit-learn's compute_class_weight
        assert counts is not None
        n = sum(counts)
        return [n / (len(counts) * c) if c else 0.0 for c in counts]
    weights = [1.0] * len(classes)
    for name, weight in class_weight.items():
        index = _class_index(name, classes)
        if index is None:
            known = ", ".join(repr(str(c)) for c in classes[:20])
            raise SpecError("class_weight", f"there is no class {name!r}; the classes are {known}")
        weights[index] = float(weight)
    if not any(weights):
        raise SpecError("class_weight", "every class weighs 0: there is nothing to learn")
    return weights


def _class_index(name: str, classes: Sequence[Any]) -> int | None:
    for i, c in enumerate(classes):
        # str(True) is "True", JSON writes true: a bool class answers to both spellings.
        if str(c) == name or (isinstance(c, bool) and name == str(c).lower()):
            return i
    try:
        value = float(name)
    except ValueError:
        return None
    # A number class answers to any spelling of its value ("1" for the class 1.0).
    for i, c in enumerate(classes):
        if isinstance(c, int | float) and not isinstance(c, bool) and c == value:
            return i
    return None
