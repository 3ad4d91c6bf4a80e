"""The new spec fields: misuse is refused naming the field, and the resolved spec says exactly
what was chosen (every layer's initializer and alpha, the output initializer, huber_delta)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from models import SpecError, Task, TrainingSpec, resolve_spec, train
from models.network import Network
from models.resolve import class_weights, complete_spec

CLASSES = Task.classification


def refused(spec: dict) -> str:
    with pytest.raises(ValidationError) as info:
        TrainingSpec.model_validate(spec)
    return str(info.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"layers": [{"units": 4, "alpha": 0.1}]}, "alpha applies to leaky_relu and elu"),
        ({"layers": [{"units": 4, "activation": "gelu", "alpha": 0.1}]}, "not to gelu"),
        ({"layers": [{"units": 4, "activation": "leaky_relu", "alpha": 1.5}]}, r"in \[0, 1\]"),
        ({"layers": [{"units": 4, "activation": "leaky_relu", "alpha": -0.1}]}, r"in \[0, 1\]"),
        ({"layers": [{"units": 4, "activation": "elu", "alpha": 0.0}]}, "must be > 0"),
        ({"layers": [{"units": 4, "activation": "elu", "alpha": "nan"}]}, "finite"),
        ({"layers": [{"units": 4, "dropout": 1.0}]}, "dropout"),
        ({"layers": [{"units": 4, "l2": -1e-4}]}, "l2"),
        ({"layers": [{"units": 4, "initializer": "orthogonal"}]}, "initializer"),
        ({"optimizer": {"name": "sgd", "amsgrad": True}}, "amsgrad applies to adam and adamw"),
        ({"optimizer": {"name": "nadam", "amsgrad": True}}, "not to nadam"),
        ({"optimizer": {"name": "nadam", "momentum": 0.9}}, "nadam has no momentum"),
        ({"optimizer": {"name": "adamw", "weight_decay": 2.0}}, "weight_decay"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"huber_delta": 0.0}, "huber_delta"),
        ({"class_weight": "uniform"}, "class_weight"),
        ({"class_weight": {"a": -1.0}}, "class_weight"),
        ({"schedule": {"warmup_epochs": -1}}, "warmup_epochs"),
        ({"schedule": {"name": "onecycle", "pct_start": 1.0}}, "pct_start"),
        ({"early_stopping": {"monitor": "val_precision"}}, "monitor"),
        ({"validation_split": 0.0, "early_stopping": {"monitor": "val_auc"}}, "validation_split"),
    ],
)
def test_misuse_is_refused_naming_the_field(spec: dict, message: str) -> None:
    import re

    assert re.search(message, refused(spec)), refused(spec)


@pytest.mark.parametrize(
    ("spec", "task", "field", "message"),
    [
        ({"loss": "mse", "label_smoothing": 0.1}, Task.regression, "label_smoothing", "mse"),
        ({"label_smoothing": 0.1}, Task.regression, "label_smoothing", "cross-entropies"),
        ({"loss": "mse", "huber_delta": 2.0}, Task.regression, "huber_delta", "huber loss"),
        ({"huber_delta": 2.0}, CLASSES, "huber_delta", "categorical_crossentropy"),
        ({"class_weight": "balanced"}, Task.regression, "class_weight", "classification"),
        ({"class_weight": {"cat": 2}}, Task.regression, "class_weight", "classification"),
    ],
)
def test_resolver_refuses_fields_that_do_not_fit_the_run(spec, task, field, message) -> None:
    with pytest.raises(SpecError) as info:
        resolve_spec(spec, task=task, n_classes=3 if task == CLASSES else 0)
    assert info.value.field == field and message in info.value.message


def test_class_names_are_checked_when_the_resolver_knows_them() -> None:
    with pytest.raises(SpecError, match=r"there is no class 'cow'; the classes are 'cat', 'dog'"):
        resolve_spec(
            {"class_weight": {"cow": 2}}, task=CLASSES, n_classes=2, classes=["cat", "dog"]
        )
    resolve_spec({"class_weight": {"dog": 2}}, task=CLASSES, n_classes=2, classes=["cat", "dog"])
    # Keys name classes as the labels spell them: numbers, bools (as JSON writes them).
    assert class_weights({"1": 3.0}, [0, 1]) == [1.0, 3.0]
    assert class_weights({"1": 3.0}, [0.0, 1.0]) == [1.0, 3.0]
    assert class_weights({"true": 3.0}, [False, True]) == [1.0, 3.0]
    assert class_weights({"True": 3.0}, [False, True]) == [1.0, 3.0]
    assert class_weights("balanced", ["a", "b"], [30, 10]) == [40 / 60, 40 / 20]
    with pytest.raises(SpecError, match="every class weighs 0"):
        class_weights({"a": 0, "b": 0}, ["a", "b"])


def test_resolved_spec_names_every_choice() -> None:
    spec = resolve_spec(
        {
            "layers": [
                {"units": 8, "activation": "leaky_relu"},
                {"units": 8, "activation": "elu", "alpha": 0.5},
                {"units": 8, "activation": "selu"},
                {"units": 8, "activation": "swish", "initializer": "he_normal"},
                {"units": 8, "activation": "tanh"},
            ],
            "loss": "huber",
        },
        task=Task.regression,
        n_classes=0,
    )
    layers = spec.layers
    assert [layer.activation for layer in layers] == ["leaky_relu", "elu", "selu", "silu", "tanh"]
    assert [layer.alpha for layer in layers] == [0.01, 0.5, None, None, None]
    assert [layer.initializer for layer in layers] == [
        "glorot_uniform", "glorot_uniform", "lecun_normal", "he_normal", "glorot_uniform",
    ]  # fmt: skip
    assert spec.output_initializer == "glorot_uniform" and spec.initializer is None
    assert spec.huber_delta == 1.0
    assert spec.optimizer.weight_decay == 0.0
    # Resolving a resolved spec changes nothing: what is stored is what is trained.
    again = resolve_spec(spec.model_dump(mode="json"), task=Task.regression, n_classes=0)
    assert again == spec
    mse = resolve_spec({}, task=Task.regression, n_classes=0)
    assert mse.huber_delta is None and mse.label_smoothing == 0.0 and mse.class_weight is None


def test_the_top_level_initializer_applies_to_every_layer_unless_one_names_its_own() -> None:
    spec = resolve_spec(
        {
            "initializer": "he_uniform",
            "layers": [
                {"units": 4, "activation": "selu"},
                {"units": 4, "initializer": "lecun_uniform"},
            ],
        },
        task=CLASSES,
        n_classes=3,
    )
    assert [layer.initializer for layer in spec.layers] == ["he_uniform", "lecun_uniform"]
    assert spec.output_initializer == "he_uniform"
    own = resolve_spec(
        {"initializer": "he_uniform", "output_initializer": "glorot_normal"},
        task=CLASSES,
        n_classes=3,
    )
    assert own.output_initializer == "glorot_normal"


# A resolved spec as the engine stored it before this vocabulary existed.
OLD_RESOLVED = {
    "task": "classification",
    "layers": [{"units": 16, "activation": "relu"}],
    "loss": "categorical_crossentropy",
    "optimizer": {
        "name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": False,
        "weight_decay": 0.0, "clipnorm": None, "beta_1": 0.9, "beta_2": 0.999, "rho": 0.9,
        "epsilon": 1e-07,
    },
    "schedule": {
        "name": "constant", "step_size": 10, "gamma": 0.1, "min_lr": 0.0, "monitor": "val_loss",
        "factor": 0.1, "patience": 10, "min_delta": 0.0001,
    },
    "epochs": 3, "batch_size": 16, "shuffle": True, "validation_split": 0.2,
    "early_stopping": None,
    "preprocessing": {"standardize": True, "standardize_target": True, "impute": "median"},
    "initializer": "he_uniform", "seed": 3, "dtype": "float32", "max_runtime_seconds": None,
}  # fmt: skip


def test_an_old_stored_spec_keeps_meaning_he_uniform(iris) -> None:
    completed = complete_spec(TrainingSpec.model_validate(OLD_RESOLVED))
    assert [layer.initializer for layer in completed.layers] == ["he_uniform"]
    assert completed.output_initializer == "he_uniform"
    x, y = iris
    old = train(x, y, OLD_RESOLVED)
    explicit = {**OLD_RESOLVED, "layers": [{"units": 16, "initializer": "he_uniform"}]}
    explicit["output_initializer"] = "he_uniform"
    explicit.pop("initializer")
    new_default = {k: v for k, v in OLD_RESOLVED.items() if k != "initializer"}
    assert np.array_equal(old.model.network.theta, train(x, y, explicit).model.network.theta)
    assert not np.array_equal(old.model.network.theta, train(x, y, new_default).model.network.theta)


@pytest.mark.parametrize(
    ("name", "std"),
    [
        ("he_normal", np.sqrt(2 / 300)),
        ("glorot_normal", np.sqrt(2 / (300 + 200))),
        ("lecun_normal", np.sqrt(1 / 300)),
        ("he_uniform", np.sqrt(2 / 300)),
        ("glorot_uniform", np.sqrt(2 / (300 + 200))),
        ("lecun_uniform", np.sqrt(1 / 300)),
    ],
)
def test_initializer_scales(name: str, std: float) -> None:
    net = Network([300, 200, 1], ["relu"], "float64")
    net.initialize([name, "glorot_uniform"], np.random.default_rng(0))
    w = net.layers[0].params["W"]
    assert abs(float(w.std()) / std - 1.0) < 0.02
    if name.endswith("uniform"):
        assert np.abs(w).max() <= np.sqrt(3.0) * std
    assert not net.layers[0].params["b"].any()
