"""TrainingSpec: the vocabulary a user writes, with Keras/scikit-learn names and defaults.

`TrainingSpec` validates shapes and ranges only (unknown fields are rejected). `resolve_spec`
fills in everything that depends on the data (task, loss, learning rate of the chosen optimizer)
so that a stored spec says exactly what was trained.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.errors import SpecError
from models.vocabulary import Task

Activation = Literal["relu", "leaky_relu", "elu", "tanh", "sigmoid", "linear"]
LossName = Literal["categorical_crossentropy", "binary_crossentropy", "mse", "mae", "huber"]
OptimizerName = Literal["sgd", "adam", "rmsprop", "adagrad"]
ScheduleName = Literal["constant", "step", "exponential", "cosine", "plateau"]
Initializer = Literal["he_uniform", "he_normal", "glorot_uniform", "glorot_normal"]
Impute = Literal["median", "mean", "none"]
Monitor = Literal["val_loss", "val_accuracy", "train_loss", "train_accuracy"]

CLASSIFICATION_LOSSES = ("categorical_crossentropy", "binary_crossentropy")
REGRESSION_LOSSES = ("mse", "mae", "huber")

# Keras' default learning rates, per optimizer.
DEFAULT_LEARNING_RATE: dict[str, float] = {
    "sgd": 0.01,
    "adam": 0.001,
    "rmsprop": 0.001,
    "adagrad": 0.001,
}

MAX_UNITS = 65_536
MAX_LAYERS = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerSpec(_Strict):
    units: Annotated[int, Field(ge=1, le=MAX_UNITS)]
    activation: Activation = "relu"


class OptimizerSpec(_Strict):
    name: OptimizerName = "sgd"
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    # None means: 0.9 for sgd (as scikit-learn), 0.0 for rmsprop; adam and adagrad have none.
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    clipnorm: Annotated[float, Field(gt=0.0)] | None = None
    beta_1: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    beta_2: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999
    rho: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    epsilon: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-7

    @model_validator(mode="after")
    def _fits_optimizer(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov applies to sgd with momentum > 0")
        if self.name in ("adam", "adagrad") and self.momentum:
            raise ValueError(f"{self.name} has no momentum (adam uses beta_1)")
        return self


class ScheduleSpec(_Strict):
    """Learning-rate schedule, applied once per epoch."""

    name: ScheduleName = "constant"
    # step: lr * gamma ** (epoch // step_size); exponential: lr * gamma ** epoch
    step_size: Annotated[int, Field(ge=1)] = 10
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    # cosine: anneals from lr to min_lr over the run's epochs
    min_lr: Annotated[float, Field(ge=0.0)] = 0.0
    # plateau (Keras ReduceLROnPlateau): lr *= factor after `patience` epochs without improvement
    monitor: Monitor = "val_loss"
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    min_delta: Annotated[float, Field(ge=0.0)] = 1e-4


class EarlyStoppingSpec(_Strict):
    monitor: Monitor = "val_loss"
    patience: Annotated[int, Field(ge=0)] = 5
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0
    restore_best_weights: bool = True


class PreprocessingSpec(_Strict):
    standardize: bool = True
    # Regression targets are standardized for training and mapped back at predict time.
    standardize_target: bool = True
    # Missing values: numeric columns take the training split's median (or mean) plus a 0/1
    # "was missing" input; categorical columns get a "missing" category. "none" refuses them.
    impute: Impute = "median"


class TrainingSpec(_Strict):
    task: Task | None = None
    layers: Annotated[list[LayerSpec], Field(max_length=MAX_LAYERS)] = Field(
        default_factory=lambda: [LayerSpec(units=64, activation="relu")]
    )
    loss: LossName | None = None
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 20
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 32
    shuffle: bool = True
    validation_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    early_stopping: EarlyStoppingSpec | None = None
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    initializer: Initializer = "he_uniform"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    dtype: Literal["float32", "float64"] = "float32"
    max_runtime_seconds: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSpec:
        if self.task is not None and self.loss is not None:
            allowed = CLASSIFICATION_LOSSES if self.task == "classification" else REGRESSION_LOSSES
            if self.loss not in allowed:
                raise ValueError(f"loss {self.loss!r} does not fit task {self.task!r}")
        monitors = [self.schedule.monitor] if self.schedule.name == "plateau" else []
        if self.early_stopping is not None:
            monitors.append(self.early_stopping.monitor)
        if self.validation_split == 0.0 and any(m.startswith("val_") for m in monitors):
            raise ValueError("monitoring a val_ metric needs validation_split > 0")
        return self


def parse_spec(spec: TrainingSpec | dict[str, Any] | None) -> TrainingSpec:
    if spec is None:
        return TrainingSpec()
    if isinstance(spec, TrainingSpec):
        return spec
    return TrainingSpec.model_validate(spec)


MAX_CLASSES = 1_000


def resolve_spec(
    spec: TrainingSpec | dict[str, Any] | None,
    *,
    task: Task,
    n_classes: int,
    numeric_labels: bool = True,
) -> TrainingSpec:
    """Fill every data-dependent default: task, loss and the optimizer's learning rate.

    `task` is what the data suggests, `n_classes` the number of distinct labels.
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
    opt = spec.optimizer
    lr = opt.learning_rate or DEFAULT_LEARNING_RATE[opt.name]
    momentum = opt.momentum if opt.momentum is not None else (0.9 if opt.name == "sgd" else 0.0)
    return spec.model_copy(
        update={
            "task": Task(task),
            "loss": loss,
            "optimizer": opt.model_copy(update={"learning_rate": lr, "momentum": momentum}),
        }
    )


def layer_sizes(spec: TrainingSpec, n_inputs: int, n_outputs: int) -> list[int]:
    return [n_inputs, *(layer.units for layer in spec.layers), n_outputs]


def count_parameters(spec: TrainingSpec, n_inputs: int, n_outputs: int) -> int:
    sizes = layer_sizes(spec, n_inputs, n_outputs)
    return sum((d_in + 1) * d_out for d_in, d_out in itertools.pairwise(sizes))


def flops_per_epoch(spec: TrainingSpec, n_inputs: int, n_outputs: int, n_train: int) -> int:
    """FLOPs of one epoch over `n_train` training rows (the split already taken off):
    multiply-adds count as 2 FLOPs, and forward + backward is about 3x forward."""
    sizes = layer_sizes(spec, n_inputs, n_outputs)
    weights = sum(d_in * d_out for d_in, d_out in itertools.pairwise(sizes))
    return 6 * weights * n_train
