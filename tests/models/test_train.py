"""fit(): learning, determinism, exact resume (and that the resume test bites), stopping."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import DataError, DivergenceError, ResumeError, TrainingState, train
from tests.models.conftest import small_spec


def comparable(history):
    """History without wall-clock seconds, the only field that may differ between runs."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_bit_identical_weights_and_history(iris, dtype) -> None:
    x, y = iris
    a = train(x, y, small_spec(dtype=dtype))
    b = train(x, y, small_spec(dtype=dtype))
    assert a.model.network.theta.dtype == np.dtype(dtype)
    assert np.array_equal(a.model.network.theta, b.model.network.theta)
    assert comparable(a.history) == comparable(b.history)
    c = train(x, y, small_spec(dtype=dtype, seed=4))
    assert not np.array_equal(a.model.network.theta, c.model.network.theta)


def train_with_checkpoint(x, y, spec, k):
    saved = {}

    def on_epoch(e):
        if e.epoch == k:
            saved["state"] = e.state().to_bytes()

    full = train(x, y, spec, on_epoch=on_epoch)
    return full, saved["state"]


OPTIMIZERS = [
    {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"name": "adam", "learning_rate": 0.01, "clipnorm": 1.0},
    {"name": "rmsprop", "learning_rate": 0.005, "momentum": 0.5},
    {"name": "adagrad", "learning_rate": 0.05},
    {"name": "nadam", "learning_rate": 0.01},
    {"name": "adamw", "learning_rate": 0.01, "amsgrad": True},
]


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 5),
    optimizer=st.sampled_from(OPTIMIZERS),
    schedule=st.sampled_from(["constant", "cosine", "plateau", "step", "onecycle"]),
    warmup=st.integers(0, 3),
    dropout=st.sampled_from([0.0, 0.3]),
)
def test_resume_from_any_epoch_is_exact(
    iris, seed, k, optimizer, schedule, warmup, dropout
) -> None:
    x, y = iris
    spec = small_spec(
        seed=seed,
        layers=[{"units": 16, "activation": "relu", "dropout": dropout}],
        optimizer=optimizer,
        schedule={"name": schedule, "patience": 1, "step_size": 2, "warmup_epochs": warmup},
        early_stopping={"monitor": "val_loss", "patience": 50},
    )
    full, state_bytes = train_with_checkpoint(x, y, spec, k)
    resumed = train(x, y, spec, resume=TrainingState.from_bytes(state_bytes))
    assert np.array_equal(full.model.network.theta, resumed.model.network.theta)
    assert comparable(full.history) == comparable(resumed.history)
    assert [h["epoch"] for h in resumed.history] == list(range(1, 7))


def old_state_bytes(state_bytes: bytes, spec: dict) -> bytes:
    """The state as the engine wrote it before this vocabulary: no warm_start key, and the
    resolved spec without the fields added since."""
    import io
    import json

    with np.load(io.BytesIO(state_bytes), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["state.json"]))
    del meta["warm_start"]
    meta["spec"] = spec
    arrays["state.json"] = np.array(json.dumps(meta))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_a_state_saved_before_the_new_fields_still_resumes(iris) -> None:
    from tests.models.test_spec_vocabulary import OLD_RESOLVED

    x, y = iris
    full, state_bytes = train_with_checkpoint(x, y, OLD_RESOLVED, 1)
    old = TrainingState.from_bytes(old_state_bytes(state_bytes, OLD_RESOLVED))
    assert old.warm_start is None and "dropout" not in old.spec["layers"][0]
    resumed = train(x, y, OLD_RESOLVED, resume=old)
    assert np.array_equal(resumed.model.network.theta, full.model.network.theta)
    assert comparable(resumed.history) == comparable(full.history)
    # Without its stored initializer the old spec now means glorot_uniform: another run.
    new_meaning = {k: v for k, v in OLD_RESOLVED.items() if k != "initializer"}
    with pytest.raises(ResumeError, match="different spec"):
        train(x, y, new_meaning, resume=old)


def test_resume_in_a_fresh_process_is_exact(iris, tmp_path) -> None:
    x, y = iris
    spec = small_spec(epochs=5)
    full, state_bytes = train_with_checkpoint(x, y, spec, 2)
    (tmp_path / "state.npz").write_bytes(state_bytes)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from sklearn.datasets import load_iris
        from models import TrainingState, train
        x, y = load_iris(return_X_y=True)
        state = TrainingState.from_bytes(open({str(tmp_path / "state.npz")!r}, "rb").read())
        result = train(x, y, {spec!r}, resume=state)
        np.save({str(tmp_path / "theta.npy")!r}, result.model.network.theta)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert np.array_equal(np.load(tmp_path / "theta.npy"), full.model.network.theta)


def test_dropping_momentum_or_rng_state_breaks_exact_resume(iris) -> None:
    """Proof that the resume tests bite: each part of the state matters."""
    x, y = iris
    spec = small_spec(epochs=5)
    full, state_bytes = train_with_checkpoint(x, y, spec, 2)

    no_momentum = TrainingState.from_bytes(state_bytes)
    no_momentum.optimizer_buffers = {}
    a = train(x, y, spec, resume=no_momentum)
    assert not np.array_equal(a.model.network.theta, full.model.network.theta)

    fresh_rng = TrainingState.from_bytes(state_bytes)
    fresh_rng.rng_state = dict(np.random.default_rng(0).bit_generator.state)
    b = train(x, y, spec, resume=fresh_rng)
    assert not np.array_equal(b.model.network.theta, full.model.network.theta)


def test_resume_refuses_other_spec_or_data(iris) -> None:
    x, y = iris
    _, state_bytes = train_with_checkpoint(x, y, small_spec(), 2)
    state = TrainingState.from_bytes(state_bytes)
    with pytest.raises(ResumeError, match="spec"):
        train(x, y, small_spec(batch_size=8), resume=state)
    changed = x.copy()
    changed[0, 0] += 1.0
    with pytest.raises(ResumeError, match="data"):
        train(changed, y, small_spec(), resume=state)


def test_on_epoch_reports_every_epoch_in_order(iris) -> None:
    x, y = iris
    seen = []
    result = train(x, y, small_spec(), on_epoch=lambda e: seen.append((e.epoch, e.epochs)))
    assert seen == [(i, 6) for i in range(1, 7)]
    last = result.history[-1]
    assert set(last) >= {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "seconds",
    }
    assert all(isinstance(v, (int, float)) for v in last.values())


def test_should_stop_ends_training_between_batches(iris) -> None:
    x, y = iris
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 20  # mid-epoch 3 (8 batches per epoch)

    result = train(x, y, small_spec(), should_stop=should_stop)
    assert result.stop_reason == "cancelled"
    assert [h["epoch"] for h in result.history] == [1, 2]
    # The dropped partial epoch leaves the weights of epoch 2: equal to a 2-epoch run.
    two = train(x, y, small_spec(epochs=2))
    assert np.array_equal(result.model.network.theta, two.model.network.theta)


def test_time_budget_stops_training(digits) -> None:
    x, y = digits
    result = train(x, y, small_spec(epochs=100_000, max_runtime_seconds=0.3))
    assert result.stop_reason == "time_limit"
    assert 1 <= len(result.history) < 100_000


def test_time_budget_counts_the_epochs_before_a_resume(iris) -> None:
    x, y = iris
    spec = small_spec(epochs=50, max_runtime_seconds=20.0)
    _, state_bytes = train_with_checkpoint(x, y, spec, 3)
    state = TrainingState.from_bytes(state_bytes)
    for h in state.history:
        h["seconds"] = 10.0  # as if the first attempt had spent 30 s
    result = train(x, y, spec, resume=state)
    assert result.stop_reason == "time_limit"
    assert len(result.history) == 3  # no budget left: nothing trained after the resume


def test_early_stopping_restores_best_weights(iris) -> None:
    x, y = iris
    spec = small_spec(
        epochs=200,
        optimizer={"name": "sgd", "learning_rate": 0.5, "momentum": 0.9},
        early_stopping={"monitor": "val_loss", "patience": 3, "restore_best_weights": True},
    )
    result = train(x, y, spec)
    assert result.stop_reason == "early_stopping"
    losses = [h["val_loss"] for h in result.history]
    best = int(np.argmin(losses))
    assert len(losses) - 1 - best == 3  # stopped exactly `patience` epochs after the best
    replay = train(x, y, {**spec, "epochs": best + 1, "early_stopping": None})
    assert np.array_equal(result.model.network.theta, replay.model.network.theta)


def test_divergence_is_a_typed_error_naming_epoch_and_batch(digits) -> None:
    x, y = digits
    spec = small_spec(
        task="regression", optimizer={"name": "sgd", "learning_rate": 10.0, "momentum": 0.9}
    )
    with pytest.raises(DivergenceError) as info:
        train(x, y, spec)
    err = info.value
    assert err.epoch >= 1 and err.batch >= 1
    assert "lower learning rate" in err.message and f"epoch {err.epoch}" in err.message


def test_schedules_set_the_learning_rate_per_epoch(iris) -> None:
    x, y = iris
    step = train(x, y, small_spec(schedule={"name": "step", "step_size": 2, "gamma": 0.5}))
    assert [h["learning_rate"] for h in step.history] == [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    cos = train(x, y, small_spec(epochs=5, schedule={"name": "cosine", "min_lr": 0.01}))
    lrs = [h["learning_rate"] for h in cos.history]
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.01)
    assert lrs[2] == pytest.approx(0.03)
    exp = train(x, y, small_spec(epochs=3, schedule={"name": "exponential", "gamma": 0.9}))
    assert [h["learning_rate"] for h in exp.history] == pytest.approx([0.05, 0.045, 0.0405])


def test_validation_split_is_stratified(iris) -> None:
    from models.split import split_indices

    _, y = iris
    train_idx, val_idx = split_indices(len(y), y.astype(int), 0.2, np.random.default_rng(0))
    assert len(set(train_idx) | set(val_idx)) == len(y) and not set(train_idx) & set(val_idx)
    assert np.bincount(y[val_idx].astype(int)).tolist() == [10, 10, 10]


def test_bad_training_data_is_named(iris) -> None:
    x, y = iris
    with pytest.raises(DataError, match="X has 150 rows, y has 149"):
        train(x, y[:-1], small_spec())
    bad = x.copy()
    bad[7, 2] = np.inf
    with pytest.raises(DataError, match=r"row 7, feature 'x2'.*not a finite"):
        train(bad, y, small_spec(validation_split=0.0))
    bad[7, 2] = np.nan  # missing: refused only when the spec says so
    with pytest.raises(DataError, match="row 7, feature 'x2': a missing value"):
        train(bad, y, small_spec(validation_split=0.0, preprocessing={"impute": "none"}))
    with pytest.raises(Exception, match="at least 2 classes"):
        train(x, np.zeros(len(x)), small_spec())
    with pytest.raises(DataError, match="single sample"):
        train(x[:51], y[:51], small_spec())


@pytest.mark.parametrize("seed", range(5))
def test_training_rows_counts_what_split_indices_keeps(seed: int) -> None:
    """The service's FLOPs estimate uses training_rows; it must equal the split the trainer
    makes, stratified by class or not."""
    from models.split import split_indices, training_rows

    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 40, size=rng.integers(2, 6)).tolist()
    labels = np.repeat(np.arange(len(counts)), counts)
    n = len(labels)
    for fraction in (0.0, 0.1, 0.2, 0.33, 0.5):
        train_idx, _ = split_indices(n, labels, fraction, np.random.default_rng(0))
        assert len(train_idx) == training_rows(n, counts, fraction)
        unstratified, _ = split_indices(n, None, fraction, np.random.default_rng(0))
        assert len(unstratified) == training_rows(n, None, fraction)
