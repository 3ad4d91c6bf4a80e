"""Warm start (`train(..., init_model=)`): the parent's weights and preprocessing, epochs that
count on, exact resume, and mismatches named."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from models import ResumeError, SpecError, TrainingState, load_model, train
from tests.models.conftest import small_spec
from tests.models.test_train import comparable, train_with_checkpoint

SPEC = small_spec(epochs=4, optimizer={"name": "adam", "learning_rate": 0.005})


@pytest.fixture(scope="module")
def parent(iris):
    x, y = iris
    return train(x, y, SPEC)


def test_same_data_continues_where_the_parent_stopped(iris, parent) -> None:
    x, y = iris
    child = train(x, y, {**SPEC, "epochs": 8}, init_model=parent.model)
    assert [h["epoch"] for h in child.history] == list(range(5, 13))
    assert child.model.epochs_trained == 12 and parent.model.epochs_trained == 4
    # It starts from the parent's weights, not afresh, and keeps improving.
    fresh = train(x, y, {**SPEC, "epochs": 8})
    assert child.history[0]["train_loss"] < 0.8 * fresh.history[0]["train_loss"]
    assert child.history[0]["train_loss"] < parent.history[-1]["train_loss"] * 1.05
    assert child.history[-1]["val_loss"] < parent.history[-1]["val_loss"]
    assert child.model.preprocessor is parent.model.preprocessor
    grandchild = train(x, y, {**SPEC, "epochs": 1}, init_model=child.model)
    assert [h["epoch"] for h in grandchild.history] == [13]
    seen = []
    train(x, y, SPEC, init_model=parent.model, on_epoch=lambda e: seen.append((e.epoch, e.epochs)))
    assert seen == [(5, 8), (6, 8), (7, 8), (8, 8)]


def test_the_parents_preprocessing_is_reused_not_refitted(iris, parent) -> None:
    x, y = iris
    shifted = x + 10.0  # standardized afresh, this would look like the same data
    child = train(shifted, y, {**SPEC, "epochs": 1}, init_model=parent.model)
    np.testing.assert_array_equal(child.model.preprocessor.mean, parent.model.preprocessor.mean)
    assert child.model.classes == parent.model.classes


def test_training_only_fields_may_change_and_the_dtype_is_cast(iris, parent) -> None:
    x, y = iris
    spec = {
        **SPEC,
        "epochs": 2,
        "dtype": "float64",
        "optimizer": {"name": "sgd", "learning_rate": 0.01},
        "layers": [{"units": 16, "dropout": 0.2, "l2": 1e-4}],
        "class_weight": "balanced",
        "schedule": {"name": "cosine", "warmup_epochs": 1},
    }
    child = train(x, y, spec, init_model=parent.model)
    assert child.model.network.theta.dtype == np.float64


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"layers": [{"units": 8}]}, "layers.0.units", "units 16, this spec 8"),
        ({"layers": [{"units": 16, "activation": "tanh"}]}, "layers.0.activation", "'relu'"),
        (
            {"layers": [{"units": 16, "activation": "leaky_relu"}]},
            "layers.0.activation",
            "leaky_relu",
        ),
        ({"layers": [{"units": 16}, {"units": 4}]}, "layers", "1 hidden layers, this spec 2"),
        ({"preprocessing": {"standardize": False}}, "preprocessing", "reuses it"),
        ({"task": "regression"}, "task", "classification model"),
    ],
)
def test_spec_mismatches_are_named(iris, parent, change, field, message) -> None:
    x, y = iris
    with pytest.raises(SpecError) as info:
        train(x, y, {**SPEC, **change}, init_model=parent.model)
    assert info.value.field == field and message in info.value.message, info.value.message


def test_data_mismatches_are_named(iris, parent) -> None:
    x, y = iris
    with pytest.raises(SpecError, match=r"init_model: the features differ.*\['a', 'b', 'c'\]"):
        train(x[:, :3], y, SPEC, init_model=parent.model, feature_names=["a", "b", "c"])
    with pytest.raises(SpecError, match=r"the features differ"):
        train(x, y, SPEC, init_model=parent.model, feature_names=["w", "x", "y", "z"])
    mixed = x.astype(object)
    mixed[:, 2] = np.where(x[:, 2] > 3, "long", "short")
    with pytest.raises(SpecError, match=r"'x2' is categorical here, numeric in the model"):
        train(mixed, y, SPEC, init_model=parent.model)
    with pytest.raises(SpecError, match=r"the classes differ.*new here: \[3\]"):
        train(x, np.where(np.arange(len(y)) < 10, 3, y), SPEC, init_model=parent.model)
    with pytest.raises(SpecError, match=r"absent here: \[2\]"):
        keep = y < 2
        train(x[keep], y[keep], SPEC, init_model=parent.model)
    binary = train(x[y < 2], y[y < 2], small_spec(loss="binary_crossentropy"))
    with pytest.raises(SpecError) as info:
        train(x[y < 2], y[y < 2], SPEC, init_model=binary.model)
    assert info.value.field == "loss"


def test_regression_warm_start_reuses_the_target_scaler(iris) -> None:
    x, _ = iris
    y = x[:, 0] * 3 + 1
    spec = small_spec(epochs=3, optimizer={"name": "adam", "learning_rate": 0.01})
    parent = train(x[:, 1:], y, spec)
    child = train(x[:, 1:], y + 1.0, spec, init_model=parent.model)
    assert child.model.target_scaler is parent.model.target_scaler
    with pytest.raises(SpecError) as info:
        train(x[:, 1:], (y > 5).astype(int), spec, init_model=parent.model)
    assert info.value.field == "task"


def test_a_warm_started_run_resumes_exactly_and_only_with_its_model(iris, parent) -> None:
    x, y = iris
    spec = {**SPEC, "layers": [{"units": 16, "dropout": 0.2}], "epochs": 5}
    saved = {}

    def on_epoch(e):
        if e.epoch == 6:  # the child's second epoch
            saved["state"] = e.state().to_bytes()

    full = train(x, y, spec, init_model=parent.model, on_epoch=on_epoch)
    state = TrainingState.from_bytes(saved["state"])
    assert state.epoch == 6 and state.warm_start is not None
    resumed = train(x, y, spec, init_model=parent.model, resume=state)
    assert np.array_equal(resumed.model.network.theta, full.model.network.theta)
    assert comparable(resumed.history) == comparable(full.history)
    assert [h["epoch"] for h in resumed.history] == [5, 6, 7, 8, 9]
    with pytest.raises(ResumeError, match="different init_model"):
        train(x, y, spec, resume=state)
    other = train(x, y, {**SPEC, "seed": 9})
    with pytest.raises(ResumeError, match="different init_model"):
        train(x, y, spec, init_model=other.model, resume=state)
    # A plain run's state does not resume as a warm start either.
    _, plain = train_with_checkpoint(x, y, spec, 2)
    with pytest.raises(ResumeError, match="different init_model"):
        train(x, y, spec, init_model=parent.model, resume=TrainingState.from_bytes(plain))


def test_epochs_trained_is_saved_and_old_artifacts_load_as_zero(iris, parent) -> None:
    x, y = iris
    child = train(x, y, {**SPEC, "epochs": 2}, init_model=parent.model)
    data = child.model.to_bytes()
    assert load_model(data).epochs_trained == 6
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.namelist():
            content = src.read(item)
            if item == "model.json.npy":
                meta = json.loads(str(np.load(io.BytesIO(content))))
                del meta["epochs_trained"]
                buf = io.BytesIO()
                np.save(buf, np.array(json.dumps(meta)))
                content = buf.getvalue()
            dst.writestr(item, content)
    old = load_model(out.getvalue())
    assert old.epochs_trained == 0
    np.testing.assert_array_equal(old.predict_proba(x), child.model.predict_proba(x))
    assert [h["epoch"] for h in train(x, y, SPEC, init_model=old).history] == [1, 2, 3, 4]
