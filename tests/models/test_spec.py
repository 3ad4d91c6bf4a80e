"""TrainingSpec: the API vocabulary, defaults, and errors that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models import SpecError, Task, TrainingSpec, count_parameters, flops_per_epoch, resolve_spec


def error_locations(spec: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as info:
        TrainingSpec.model_validate(spec)
    return [e["loc"] for e in info.value.errors()]


def test_api_example_is_accepted_verbatim() -> None:
    spec = TrainingSpec.model_validate(
        {
            "task": "classification",
            "layers": [{"units": 64, "activation": "relu"}],
            "loss": "categorical_crossentropy",
            "optimizer": {
                "name": "sgd",
                "learning_rate": 0.01,
                "momentum": 0.9,
                "nesterov": False,
                "weight_decay": 0.0,
                "clipnorm": None,
            },
            "schedule": {"name": "constant"},
            "epochs": 20,
            "batch_size": 32,
            "shuffle": True,
            "validation_split": 0.2,
            "early_stopping": {
                "monitor": "val_loss",
                "patience": 5,
                "min_delta": 0.0,
                "restore_best_weights": True,
            },
            "preprocessing": {"standardize": True},
            "initializer": "he_uniform",
            "seed": 0,
            "dtype": "float32",
            "max_runtime_seconds": None,
        }
    )
    assert spec.epochs == 20


@pytest.mark.parametrize(
    ("spec", "location"),
    [
        ({"epochs": 0}, ("epochs",)),
        ({"optimizer": {"learning_rate": -1}}, ("optimizer", "learning_rate")),
        ({"layers": [{"units": 8, "activation": "mish"}]}, ("layers", 0, "activation")),
        ({"layers": [{"units": 0}]}, ("layers", 0, "units")),
        ({"batch_size": 0}, ("batch_size",)),
        ({"validation_split": 1.0}, ("validation_split",)),
        ({"unknown": 1}, ("unknown",)),
        ({"optimizer": {"name": "sgd", "betas": 1}}, ("optimizer", "betas")),
        ({"dtype": "float16"}, ("dtype",)),
    ],
)
def test_out_of_range_and_unknown_fields_name_the_field(spec, location) -> None:
    assert location in error_locations(spec)


def test_cross_field_rules() -> None:
    with pytest.raises(ValidationError, match="validation_split > 0"):
        TrainingSpec.model_validate({"validation_split": 0, "early_stopping": {}})
    with pytest.raises(ValidationError, match="nesterov"):
        TrainingSpec.model_validate({"optimizer": {"name": "adam", "nesterov": True}})
    with pytest.raises(ValidationError, match="does not fit task"):
        TrainingSpec.model_validate({"task": "regression", "loss": "categorical_crossentropy"})


def test_resolver_fills_every_default_from_the_task() -> None:
    classification = resolve_spec({}, task=Task.classification, n_classes=10)
    assert classification.loss == "categorical_crossentropy"
    assert classification.optimizer.learning_rate == 0.01
    assert classification.optimizer.momentum == 0.9
    regression = resolve_spec({"optimizer": {"name": "adam"}}, task=Task.regression, n_classes=300)
    assert regression.loss == "mse" and regression.optimizer.learning_rate == 0.001
    assert regression.optimizer.momentum == 0.0
    forced = resolve_spec({"task": "regression"}, task=Task.classification, n_classes=3)
    assert forced.task == "regression"


def test_resolver_errors_name_the_field() -> None:
    with pytest.raises(SpecError) as info:
        resolve_spec({"loss": "binary_crossentropy"}, task=Task.classification, n_classes=3)
    assert info.value.field == "loss"
    with pytest.raises(SpecError, match="at least 2 classes"):
        resolve_spec({}, task=Task.classification, n_classes=1)
    with pytest.raises(SpecError, match="numeric label"):
        resolve_spec(
            {"task": "regression"}, task=Task.classification, n_classes=2, numeric_labels=False
        )


def test_parameter_and_flop_counts() -> None:
    spec = resolve_spec(
        {"layers": [{"units": 128}, {"units": 64}], "validation_split": 0.0},
        task=Task.classification,
        n_classes=10,
    )
    assert count_parameters(spec, 64, 10) == 65 * 128 + 129 * 64 + 65 * 10
    assert flops_per_epoch(spec, 64, 10, 1000) == 6 * (64 * 128 + 128 * 64 + 64 * 10) * 1000
