"""Nadam, AMSGrad and AdamW against plain transcriptions of Keras 3's update rules; warmup and
onecycle against their stated rules; what early stopping and plateau may monitor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import SpecError, Task, train
from models.optim import make_optimizer
from models.resolve import complete_spec, resolve_spec
from models.schedules import EarlyStopping, Schedule
from models.spec import EarlyStoppingSpec, OptimizerSpec, ScheduleSpec, TrainingSpec, monitor_mode
from tests.models.conftest import small_spec


def resolved_optimizer(**fields) -> OptimizerSpec:
    return complete_spec(TrainingSpec(optimizer=OptimizerSpec(**fields))).optimizer


def run(spec: OptimizerSpec, theta: np.ndarray, grads: list[np.ndarray], lr: float) -> np.ndarray:
    theta = theta.copy()
    optimizer = make_optimizer(spec, theta, np.ones_like(theta))
    for g in grads:
        optimizer.step(theta, g.copy(), lr)
    return theta


def shrinking_gradients(rng: np.random.Generator, steps: int, size: int) -> list[np.ndarray]:
    """Gradients that shrink, so that v falls and AMSGrad's running maximum differs from it."""
    return [rng.normal(size=size) * 0.7**t for t in range(steps)]


def test_nadam_follows_keras() -> None:
    rng = np.random.default_rng(0)
    theta0, grads, lr = rng.normal(size=7), shrinking_gradients(rng, 12, 7), 0.01
    b1, b2, eps = 0.9, 0.999, 1e-7
    theta, m, v, u_product = theta0.copy(), np.zeros(7), np.zeros(7), 1.0
    for t, g in enumerate(grads, start=1):
        u_t = b1 * (1 - 0.5 * 0.96**t)
        u_t1 = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product *= u_t
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
        theta = theta - m_hat * lr / (np.sqrt(v / (1 - b2**t)) + eps)
    ours = run(resolved_optimizer(name="nadam"), theta0, grads, lr)
    np.testing.assert_allclose(ours, theta, rtol=1e-12)
    adam = run(resolved_optimizer(name="adam"), theta0, grads, lr)
    assert not np.allclose(adam, theta, rtol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_amsgrad_follows_keras(name: str) -> None:
    rng = np.random.default_rng(1)
    theta0, grads, lr = rng.normal(size=5), shrinking_gradients(rng, 10, 5), 0.01
    b1, b2, eps = 0.9, 0.999, 1e-7
    wd = 0.004 if name == "adamw" else 0.0
    theta, m, v, v_max = theta0.copy(), np.zeros(5), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        theta = theta - theta * lr * wd  # decoupled decay first, as Keras
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        v_max = np.maximum(v_max, v)
        theta = theta - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v_max) + eps)
    ours = run(resolved_optimizer(name=name, amsgrad=True), theta0, grads, lr)
    np.testing.assert_allclose(ours, theta, rtol=1e-12)
    plain = run(resolved_optimizer(name=name), theta0, grads, lr)
    assert not np.allclose(plain, theta, rtol=1e-6)


def test_adamw_decays_by_default_and_the_others_do_not() -> None:
    assert resolved_optimizer(name="adamw").weight_decay == 0.004
    assert resolved_optimizer(name="adamw", weight_decay=0.0).weight_decay == 0.0
    for name in ("sgd", "adam", "nadam", "rmsprop", "adagrad"):
        assert resolved_optimizer(name=name).weight_decay == 0.0
    assert resolved_optimizer(name="nadam").learning_rate == 0.001
    assert resolved_optimizer(name="adamw").learning_rate == 0.001
    # adamw is adam with that decay.
    rng = np.random.default_rng(2)
    theta0, grads = rng.normal(size=4), [rng.normal(size=4) for _ in range(3)]
    np.testing.assert_array_equal(
        run(resolved_optimizer(name="adamw"), theta0, grads, 0.01),
        run(resolved_optimizer(name="adam", weight_decay=0.004), theta0, grads, 0.01),
    )


def test_nadam_state_resumes_exactly() -> None:
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=6) for _ in range(6)]
    spec = resolved_optimizer(name="nadam")
    theta = rng.normal(size=6)
    first = make_optimizer(spec, theta, np.ones(6))
    for g in grads[:3]:
        first.step(theta, g.copy(), 0.01)
    buffers, meta = first.state()
    copy = theta.copy()
    second = make_optimizer(spec, copy, np.ones(6))
    second.load_state(buffers, meta)
    for g in grads[3:]:
        first.step(theta, g.copy(), 0.01)
        second.step(copy, g.copy(), 0.01)
    np.testing.assert_array_equal(theta, copy)


def lrs(epochs: int, base: float = 0.1, **fields) -> list[float]:
    schedule = Schedule(ScheduleSpec(**fields), base, epochs)
    return [schedule.lr(e) for e in range(epochs)]


def test_warmup_ramps_linearly_then_hands_over() -> None:
    assert lrs(6, warmup_epochs=3) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    step = lrs(7, warmup_epochs=1, name="step", step_size=2, gamma=0.5)
    assert step == pytest.approx([0.05, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    cosine = lrs(6, warmup_epochs=2, name="cosine", min_lr=0.01)
    assert cosine[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])
    assert cosine[-1] == pytest.approx(0.01)  # the cosine spans the epochs after warmup


def test_onecycle_is_pytorchs_per_epoch() -> None:
    lr = lrs(10, name="onecycle")
    # PyTorch OneCycleLR(max_lr=0.1, total_steps=10): starts at max_lr / 25, peaks at step
    # 0.3 * 10 - 1 = 2, ends at max_lr / 25 / 1e4; cosine in between.
    assert lr[0] == pytest.approx(0.004)
    assert lr[1] == pytest.approx(0.004 + (0.1 - 0.004) / 2)
    assert lr[2] == pytest.approx(0.1)
    assert lr[9] == pytest.approx(4e-7)
    pct = (5 - 2) / (9 - 2)
    assert lr[5] == pytest.approx(4e-7 + (0.1 - 4e-7) / 2 * (1 + math.cos(math.pi * pct)))
    assert lr[:3] == sorted(lr[:3]) and lr[2:] == sorted(lr[2:], reverse=True)
    custom = lrs(5, name="onecycle", pct_start=0.5, div_factor=10, final_div_factor=100)
    assert custom[0] == pytest.approx(0.01) and custom[-1] == pytest.approx(1e-4)
    # The peak falls between epochs (step 0.5 * 5 - 1 = 1.5): no epoch gets the full lr.
    assert custom[1] == pytest.approx(0.1 + (0.01 - 0.1) / 2 * (1 + math.cos(math.pi / 1.5)))
    assert max(custom) < 0.1
    assert lrs(1, name="onecycle") == pytest.approx([4e-7])  # a phase of no length
    with_warmup = lrs(12, name="onecycle", warmup_epochs=2)
    assert with_warmup[2:] == pytest.approx(lr)


def test_plateau_waits_for_the_end_of_warmup() -> None:
    schedule = Schedule(ScheduleSpec(name="plateau", warmup_epochs=3, patience=1), 0.1, 10)
    for epoch in range(3):
        schedule.update(epoch, {"val_loss": 1.0 + epoch})  # worse and worse, during warmup
    assert schedule.scale == 1.0 and schedule.best is None
    schedule.update(3, {"val_loss": 1.0})
    schedule.update(4, {"val_loss": 2.0})
    assert schedule.scale == pytest.approx(0.1)


def test_monitor_modes() -> None:
    for monitor in ("val_accuracy", "val_f1", "val_auc", "val_r2", "train_accuracy"):
        assert monitor_mode(monitor) == "max"
    for monitor in ("val_loss", "val_log_loss", "val_mae", "val_rmse", "train_loss"):
        assert monitor_mode(monitor) == "min"


def test_a_monitor_on_the_other_task_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError) as info:
        resolve_spec(
            {"early_stopping": {"monitor": "val_mae"}}, task=Task.classification, n_classes=3
        )
    assert (
        info.value.field == "early_stopping.monitor" and "regression metric" in info.value.message
    )
    for monitor in ("val_auc", "val_f1", "val_log_loss", "val_accuracy", "train_accuracy"):
        with pytest.raises(SpecError) as info:
            resolve_spec(
                {"schedule": {"name": "plateau", "monitor": monitor}},
                task=Task.regression,
                n_classes=0,
            )
        assert info.value.field == "schedule.monitor"
    # The plateau's monitor is only checked when the schedule is plateau.
    resolve_spec({"schedule": {"monitor": "val_auc"}}, task=Task.regression, n_classes=0)


def test_a_monitored_metric_the_run_does_not_report_is_an_error() -> None:
    stopper = EarlyStopping(EarlyStoppingSpec(monitor="val_auc"))
    with pytest.raises(SpecError, match=r"val_auc is not among this run's metrics \(val_loss"):
        stopper.update(1, {"epoch": 1, "val_loss": 0.3, "learning_rate": 0.1}, np.zeros(2))
    plateau = Schedule(ScheduleSpec(name="plateau", monitor="val_f1"), 0.1, 5)
    with pytest.raises(SpecError) as info:
        plateau.update(0, {"val_loss": 0.3})
    assert info.value.field == "schedule.monitor"


def test_early_stopping_on_a_maximized_regression_metric(iris) -> None:
    x, _ = iris
    y = x[:, 0] * 2 + x[:, 1]
    spec = small_spec(
        epochs=200,
        early_stopping={"monitor": "val_r2", "patience": 3},
        optimizer={"name": "adam", "learning_rate": 0.05},
    )
    result = train(x[:, 1:], y, spec)
    r2 = [h["val_r2"] for h in result.history]
    best = int(np.argmax(r2))
    assert result.stop_reason == "early_stopping" and len(r2) - 1 - best == 3
