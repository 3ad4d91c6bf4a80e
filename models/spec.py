"""TrainingSpec: the vocabulary a user writes, with Keras/scikit-learn names and defaults.

`TrainingSpec` validates shapes and ranges only (unknown fields are rejected). `resolve_spec`
(models.resolve) fills in everything else, so that a stored spec says exactly what was trained.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.activations import ALPHA_DEFAULTS
from models.vocabulary import Task

Activation = Literal[
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",  # an alias: parsed as "silu"
    "softplus",
    "tanh",
    "sigmoid",
    "linear",
]
LossName = Literal["categorical_crossentropy", "binary_crossentropy", "mse", "mae", "huber"]
OptimizerName = Literal["sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad"]
ScheduleName = Literal["constant", "step", "exponential", "cosine", "plateau", "onecycle"]
Initializer = Literal[
    "he_uniform",
    "he_normal",
    "glorot_uniform",
    "glorot_normal",
    "lecun_uniform",
    "lecun_normal",
]
Impute = Literal["median", "mean", "none"]
Monitor = Literal[
    "val_loss",
    "val_accuracy",
    "val_log_loss",
    "val_f1",
    "val_auc",
    "val_mae",
    "val_rmse",
    "val_r2",
    "train_loss",
    "train_accuracy",
]

CLASSIFICATION_LOSSES = ("categorical_crossentropy", "binary_crossentropy")
REGRESSION_LOSSES = ("mse", "mae", "huber")
# Monitored metrics (the name after val_ / train_) that only one task reports, and those that
# improve upwards.
CLASSIFICATION_METRICS = frozenset({"accuracy", "log_loss", "f1", "auc"})
REGRESSION_METRICS = frozenset({"mae", "rmse", "r2"})
MAXIMIZED_METRICS = frozenset({"accuracy", "f1", "auc", "r2", "top_5_accuracy"})

# Keras' default learning rates, per optimizer.
DEFAULT_LEARNING_RATE: dict[str, float] = {
    "sgd": 0.01,
    "adam": 0.001,
    "adamw": 0.001,
    "nadam": 0.001,
    "rmsprop": 0.001,
    "adagrad": 0.001,
}
# Keras 3's AdamW decays by default; every other optimizer does not.
DEFAULT_WEIGHT_DECAY: dict[str, float] = {"adamw": 0.004}
AMSGRAD_OPTIMIZERS = ("adam", "adamw")  # as Keras: Nadam has no amsgrad
NO_MOMENTUM_OPTIMIZERS = ("adam", "adamw", "nadam", "adagrad")

MAX_UNITS = 65_536
MAX_LAYERS = 64
MAX_CLASSES = 1_000

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerSpec(_Strict):
    """One hidden dense layer: activation(x W + b), then dropout (training only)."""

    units: Annotated[int, Field(ge=1, le=MAX_UNITS)]
    activation: Activation = "relu"
    # leaky_relu: the negative slope, 0 <= alpha <= 1 (default 0.01); elu: alpha > 0 (default
    # 1.0). None means the default; resolved, it is filled in. Other activations take none.
    alpha: Finite | None = None
    # Inverted dropout on this layer's output: each unit is zeroed with probability `dropout`
    # and the others scaled by 1 / (1 - dropout); identity at prediction.
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # L2 penalty l2 * sum(W ** 2) on this layer's weights (not its biases), as Keras' L2.
    l2: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0
    # None: the spec's `initializer`, else one suited to the activation (see models.resolve).
    initializer: Initializer | None = None

    @field_validator("activation")
    @classmethod
    def _alias(cls, name: str) -> str:
        return "silu" if name == "swish" else name

    @model_validator(mode="after")
    def _alpha_fits(self) -> LayerSpec:
        alpha = self.alpha
        if alpha is None:
            return self
        if self.activation not in ALPHA_DEFAULTS:
            raise ValueError(f"alpha applies to leaky_relu and elu, not to {self.activation}")
        if self.activation == "leaky_relu" and not 0.0 <= alpha <= 1.0:
            raise ValueError("leaky_relu's alpha (its negative slope) must be in [0, 1]")
        if self.activation == "elu" and alpha <= 0.0:
            raise ValueError("elu's alpha must be > 0")
        return self


class OptimizerSpec(_Strict):
    name: OptimizerName = "sgd"
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    # None means: 0.9 for sgd (as scikit-learn), 0.0 for rmsprop; the Adam family and adagrad
    # have none.
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    nesterov: bool = False
    # Decoupled: w -= lr * weight_decay * w (weights only). None: 0.004 for adamw, else 0.
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    clipnorm: Annotated[float, Field(gt=0.0)] | None = None
    beta_1: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    beta_2: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999
    rho: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    epsilon: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-7
    # AMSGrad (adam and adamw, as Keras): divide by the running maximum of v.
    amsgrad: bool = False

    @model_validator(mode="after")
    def _fits_optimizer(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov applies to sgd with momentum > 0")
        if self.name in NO_MOMENTUM_OPTIMIZERS and self.momentum:
            raise ValueError(f"{self.name} has no momentum (the Adam family uses beta_1)")
        if self.amsgrad and self.name not in AMSGRAD_OPTIMIZERS:
            raise ValueError(f"amsgrad applies to adam and adamw, not to {self.name}")
        return self


class ScheduleSpec(_Strict):
    """Learning-rate schedule, applied once per epoch (epochs counted from 0).

    warmup_epochs W (any schedule): epoch e < W uses lr * (e + 1) / (W + 1), a linear ramp that
    reaches lr at epoch W; the schedule named by `name` then runs from epoch W as if it were
    its epoch 0, over the remaining epochs - W epochs (plateau watches those epochs only)."""

    name: ScheduleName = "constant"
    warmup_epochs: Annotated[int, Field(ge=0, le=100_000)] = 0
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
    # onecycle (PyTorch OneCycleLR, stepped per epoch; lr is its max_lr): cosine from
    # lr / div_factor up to lr over the first pct_start of the epochs, then down to
    # lr / (div_factor * final_div_factor). The learning rate only: momentum is not cycled.
    # Both factors >= 1, so that lr is the cycle's peak and the end its lowest point.
    pct_start: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    div_factor: Annotated[float, Field(ge=1.0, le=1e6)] = 25.0
    final_div_factor: Annotated[float, Field(ge=1.0, le=1e9)] = 1e4


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


ClassWeights = Annotated[dict[str, Annotated[Finite, Field(ge=0.0)]], Field(max_length=MAX_CLASSES)]


def _default_layers() -> list[LayerSpec]:
    return [LayerSpec(units=64, activation="relu")]


def _published(factory: Callable[[], BaseModel | list[LayerSpec]]) -> dict[str, Any]:
    """A default_factory's value as the field's JSON Schema ``default`` (pydantic publishes
    none for a factory), so that the OpenAPI document shows every default. Schema only."""
    value = factory()
    if isinstance(value, list):
        return {"default": [item.model_dump(mode="json") for item in value]}
    return {"default": value.model_dump(mode="json")}


class TrainingSpec(_Strict):
    task: Task | None = None
    layers: Annotated[list[LayerSpec], Field(max_length=MAX_LAYERS)] = Field(
        default_factory=_default_layers, json_schema_extra=_published(_default_layers)
    )
    loss: LossName | None = None
    # The cross-entropies only (Keras semantics): categorical y * (1 - s) + s / K, binary
    # y * (1 - s) + s / 2; training and validation loss alike (accuracy uses the labels).
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # huber only; None means 1.0 (resolved: filled in for huber, None for other losses).
    huber_delta: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    # Classification only: per-sample loss weights by class, "balanced" (scikit-learn's
    # n_samples / (n_classes * count), counted on the training split) or {class: weight} with
    # the classes as the labels spell them ("cat", "1"); a class left out weighs 1. Training
    # loss only (as Keras): validation metrics stay unweighted.
    class_weight: Literal["balanced"] | ClassWeights | None = None
    optimizer: OptimizerSpec = Field(
        default_factory=OptimizerSpec, json_schema_extra=_published(OptimizerSpec)
    )
    schedule: ScheduleSpec = Field(
        default_factory=ScheduleSpec, json_schema_extra=_published(ScheduleSpec)
    )
    # Epochs to train in this run (a warm start continues counting from its model's).
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 20
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 32
    shuffle: bool = True
    validation_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    early_stopping: EarlyStoppingSpec | None = None
    preprocessing: PreprocessingSpec = Field(
        default_factory=PreprocessingSpec, json_schema_extra=_published(PreprocessingSpec)
    )
    # Every layer's weights (hidden and output) unless the layer names its own; None: chosen
    # per layer (models.resolve). Resolved specs carry each layer's choice and
    # output_initializer, so this field then only records what the user asked.
    initializer: Initializer | None = None
    # The output layer's; None: `initializer`, else glorot_uniform.
    output_initializer: Initializer | None = None
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

    def monitors(self) -> dict[str, str]:
        """field -> monitored metric, for the monitors this spec uses."""
        used: dict[str, str] = {}
        if self.schedule.name == "plateau":
            used["schedule.monitor"] = self.schedule.monitor
        if self.early_stopping is not None:
            used["early_stopping.monitor"] = self.early_stopping.monitor
        return used


def parse_spec(spec: TrainingSpec | dict[str, Any] | None) -> TrainingSpec:
    if spec is None:
        return TrainingSpec()
    if isinstance(spec, TrainingSpec):
        return spec
    return TrainingSpec.model_validate(spec)


def monitor_mode(monitor: str) -> str:
    metric = monitor.removeprefix("val_").removeprefix("train_")
    return "max" if metric in MAXIMIZED_METRICS else "min"


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
