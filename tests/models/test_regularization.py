"""Dropout and L2 in training: seeded masks (deterministic, resumable), identity at predict, the
penalty in the reported loss, and a smaller train/held-out gap on a small noisy set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from models import TrainingState, train
from tests.models.conftest import small_spec
from tests.models.test_train import comparable, train_with_checkpoint

DROPOUT_LAYERS: list[dict[str, Any]] = [
    {"units": 16, "dropout": 0.3},
    {"units": 8, "activation": "gelu", "dropout": 0.2},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_runs_are_deterministic_per_seed(iris, dtype) -> None:
    x, y = iris
    spec = small_spec(layers=DROPOUT_LAYERS, dtype=dtype)
    a, b = train(x, y, spec), train(x, y, spec)
    assert np.array_equal(a.model.network.theta, b.model.network.theta)
    assert comparable(a.history) == comparable(b.history)
    other_seed = train(x, y, {**spec, "seed": 4})
    assert not np.array_equal(a.model.network.theta, other_seed.model.network.theta)
    no_dropout = [{**layer, "dropout": 0.0} for layer in DROPOUT_LAYERS]
    plain = train(x, y, {**spec, "layers": no_dropout})
    assert not np.array_equal(a.model.network.theta, plain.model.network.theta)
    # dropout 0 is the plain path itself, bit for bit.
    default = [{k: v for k, v in layer.items() if k != "dropout"} for layer in DROPOUT_LAYERS]
    assert np.array_equal(
        plain.model.network.theta, train(x, y, {**spec, "layers": default}).model.network.theta
    )


def test_dropout_is_the_identity_at_predict(iris) -> None:
    x, y = iris
    model = train(x, y, small_spec(layers=[{"units": 32, "dropout": 0.5}])).model
    first = model.predict_proba(x)
    np.testing.assert_array_equal(first, model.predict_proba(x))
    pre, (l0, l1) = model.preprocessor, model.network.layers
    h = np.maximum(pre.transform(x, dtype="float64") @ l0.params["W"] + l0.params["b"], 0)
    z = h @ l1.params["W"] + l1.params["b"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(first, p / p.sum(axis=1, keepdims=True), rtol=1e-5)


def test_dropout_masks_come_from_the_saved_generator(iris) -> None:
    """Without shuffling, only the masks use the generator: resetting it breaks exact resume,
    restoring it keeps it exact."""
    x, y = iris
    spec = small_spec(epochs=5, shuffle=False, layers=DROPOUT_LAYERS)
    full, state_bytes = train_with_checkpoint(x, y, spec, 2)
    exact = train(x, y, spec, resume=TrainingState.from_bytes(state_bytes))
    assert np.array_equal(exact.model.network.theta, full.model.network.theta)
    reset = TrainingState.from_bytes(state_bytes)
    reset.rng_state = dict(np.random.default_rng(0).bit_generator.state)
    broken = train(x, y, spec, resume=reset)
    assert not np.array_equal(broken.model.network.theta, full.model.network.theta)


def test_l2_is_part_of_the_reported_training_loss(iris) -> None:
    x, y = iris
    # A learning rate so small that the weights stay (to float64 precision) where they started.
    spec = small_spec(epochs=1, dtype="float64", optimizer={"name": "sgd", "learning_rate": 1e-12})
    plain = train(x, y, spec)
    l2 = 0.01
    penalized = train(x, y, {**spec, "layers": [{"units": 16, "l2": l2}]})
    w = penalized.model.network.layers[0].params["W"]
    expected = plain.history[0]["train_loss"] + l2 * float((w**2).sum())
    assert penalized.history[0]["train_loss"] == pytest.approx(expected, rel=1e-9)
    # Validation reports the data's loss alone.
    assert penalized.history[0]["val_loss"] == pytest.approx(plain.history[0]["val_loss"])


def log_loss(model, x, y) -> float:
    p = model.predict_proba(x)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


@pytest.mark.parametrize("seed", [0, 1])
def test_dropout_and_l2_shrink_the_generalization_gap(seed: int) -> None:
    """Two hidden layers of 128 on 200 noisy rows (15 % of labels flipped) memorize them;
    dropout 0.5 and l2 0.01 keep the held-out log loss far closer to the training one."""
    x, y = make_classification(
        n_samples=400, n_features=20, n_informative=5, flip_y=0.15, random_state=0
    )
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    base = {
        "epochs": 60,
        "validation_split": 0.0,
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "seed": seed,
    }
    gaps, held_out = [], []
    for extra in ({}, {"dropout": 0.5, "l2": 0.01}):
        spec = {**base, "layers": [{"units": 128, **extra}, {"units": 128, **extra}]}
        model = train(x_tr, y_tr, spec).model
        held_out.append(log_loss(model, x_te, y_te))
        gaps.append(held_out[-1] - log_loss(model, x_tr, y_tr))
    assert gaps[1] < 0.6 * gaps[0], gaps
    assert held_out[1] < held_out[0], held_out
