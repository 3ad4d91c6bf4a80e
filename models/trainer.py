"""Training: raw data and a spec in, a trained `Model` and its per-epoch history out.

`train()` prepares the data (split, preprocessing fitted on the training split), builds the
network, and runs `fit()`: epochs of shuffled mini-batches (models.batches), forward (with
dropout masks when a layer asks), fused loss gradient (class-weighted when asked), backward,
L2 penalty, optimizer step. A feature the spec leaves off costs the step loop no numpy call.
Progress leaves through callbacks only; this module touches no file, database or log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from models import warm_start
from models.batches import EpochBatches, TrainAccuracy
from models.errors import DivergenceError, ResumeError, SpecError
from models.evaluation import evaluate_validation, final_metrics
from models.fpenv import subnormals_flushed
from models.losses import make_loss
from models.model import Model
from models.network import Network, initializers, network_for
from models.optim import make_optimizer
from models.prepared import PreparedData, n_outputs, prepare_data
from models.regularization import L2Penalty
from models.resolve import complete_spec
from models.schedules import EarlyStopping, Schedule
from models.spec import TrainingSpec, layer_sizes, parse_spec
from models.state import TrainingState
from models.vocabulary import FeatureType

StopReason = Literal["completed", "early_stopping", "time_limit", "cancelled"]


@dataclass
class EpochEnd:
    """What `on_epoch` receives after each completed epoch. A warm start counts on from its
    init_model's epochs: `epoch` and `epochs` include them, as the history's epochs do."""

    epoch: int  # 1-based, epochs completed so far
    epochs: int
    metrics: dict[str, Any]
    _snapshot: Callable[[], TrainingState]

    def state(self) -> TrainingState:
        """A copy of everything needed to resume from the end of this epoch."""
        return self._snapshot()


@dataclass
class TrainResult:
    model: Model
    history: list[dict[str, Any]]
    stop_reason: StopReason
    spec: TrainingSpec  # resolved: every default filled in
    final_state: TrainingState | None = None
    warnings: list[str] = field(default_factory=list)


def saved_spec_matches(saved: dict[str, Any], spec_json: dict[str, Any]) -> bool:
    """A saved spec read by today's TrainingSpec and completed: a state saved before a field
    existed lacks it, and still matches when the field's default means the old behaviour."""
    try:
        parsed = complete_spec(TrainingSpec.model_validate(saved))
    except (ValidationError, ValueError):
        return False
    return parsed.model_dump(mode="json") == spec_json


def fit(
    net: Network,
    data: PreparedData,
    spec: TrainingSpec,
    *,
    shuffle_rng: np.random.Generator,
    resume: TrainingState | None = None,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    warm: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], StopReason, TrainingState]:
    """Train `net` in place; returns the history, why it stopped, and the final state.

    `warm` is a warm start's `warm_start.marker`: the history's epochs count on from its."""
    assert spec.loss is not None and spec.optimizer.learning_rate is not None
    loss_fn = make_loss(spec.loss, huber_delta=spec.huber_delta)
    optimizer = make_optimizer(spec.optimizer, net.theta, net.weight_mask())
    schedule = Schedule(spec.schedule, spec.optimizer.learning_rate, spec.epochs)
    stopper = EarlyStopping(spec.early_stopping)
    penalty = L2Penalty.for_network(net, [layer.l2 for layer in spec.layers])
    history: list[dict[str, Any]] = []
    fingerprint = data.fingerprint()
    spec_json = spec.model_dump(mode="json")
    offset = 0 if warm is None else int(warm["epochs"])
    first_epoch = 0  # of this run, 0-based

    if resume is not None:
        if not saved_spec_matches(resume.spec, spec_json):
            raise ResumeError("the saved state was trained with a different spec")
        if resume.warm_start != warm:  # before the data: another model preprocesses it otherwise
            raise ResumeError("the saved state was warm-started from a different init_model")
        if resume.data_fingerprint != fingerprint:
            raise ResumeError("the saved state was trained on different data")
        if resume.theta.shape != net.theta.shape:
            raise ResumeError("the saved weights do not fit this network")
        np.copyto(net.theta, resume.theta)
        optimizer.load_state(resume.optimizer_buffers, resume.optimizer_meta)
        shuffle_rng.bit_generator.state = resume.rng_state
        schedule.load_state(resume.schedule_state)
        stopper.load_state(resume.early_stopping_state, resume.best_theta)
        history = [dict(h) for h in resume.history]
        first_epoch = resume.epoch - offset

    def snapshot(epoch: int) -> TrainingState:
        buffers, meta = optimizer.state()
        return TrainingState(
            spec=spec_json,
            data_fingerprint=fingerprint,
            epoch=epoch,
            theta=net.theta.copy(),
            optimizer_buffers=buffers,
            optimizer_meta=meta,
            rng_state=dict(shuffle_rng.bit_generator.state),
            schedule_state=schedule.state(),
            early_stopping_state=stopper.state(),
            best_theta=None if stopper.best_theta is None else stopper.best_theta.copy(),
            history=[dict(h) for h in history],
            warm_start=warm,
        )

    x_all, t_all, labels_all, w_all = data.x_train, data.t_train, data.labels_train, data.w_train
    # What early stopping and the plateau schedule watch is computed every epoch, whatever its cost.
    monitored = frozenset(
        m
        for m in (
            spec.early_stopping.monitor if spec.early_stopping else None,
            spec.schedule.monitor if spec.schedule.name == "plateau" else None,
        )
        if m is not None
    )
    n = x_all.shape[0]
    batch_size = min(spec.batch_size, n)
    batches = EpochBatches(x_all, t_all, w_all, shuffle=spec.shuffle)
    accuracy = None if labels_all is None else TrainAccuracy(labels_all, t_all.shape[1], net.dtype)
    # Dropout masks come from the shuffling generator: its saved state covers them.
    dropout_rng = shuffle_rng if net.has_dropout else None
    # The time budget covers the whole run: a resumed run has already spent its epochs' seconds.
    deadline = None
    if spec.max_runtime_seconds is not None:
        spent = sum(float(h["seconds"]) for h in history)
        deadline = time.monotonic() + spec.max_runtime_seconds - spent
    epoch_start_theta = net.theta.copy()
    stop_reason: StopReason = "completed"

    for epoch in range(first_epoch, spec.epochs):
        started = time.perf_counter()
        lr = schedule.lr(epoch)
        grad_scale = optimizer.grad_scale(lr)
        order = shuffle_rng.permutation(n) if spec.shuffle else None
        batches.start(order)

        loss_sum, interrupted = 0.0, False
        for batch, i in enumerate(range(0, n, batch_size), start=1):
            if (should_stop is not None and should_stop()) or (
                deadline is not None and time.monotonic() > deadline
            ):
                interrupted = True
                break
            m = min(batch_size, n - i)
            xb, tb, wb = batches.batch(i, m)
            ws = net.workspace(m)
            z = net.forward(xb, ws, dropout_rng)
            if accuracy is not None:
                accuracy.record(i, ws.logits_fm)
            value, dz = loss_fn.value_and_grad(z, tb, out=ws.dlogits, scale=grad_scale, weights=wb)
            if not math.isfinite(value):
                raise DivergenceError(offset + epoch + 1, batch, lr)
            net.backward(dz, ws)
            if penalty is not None:  # non-finite weights are caught at the epoch's end
                value += penalty.apply(grad_scale)
            loss_sum += value * m
            optimizer.step(net.theta, net.grad, lr)

        if interrupted:
            # The partial epoch is dropped: the model matches the history's last epoch.
            np.copyto(net.theta, epoch_start_theta)
            stop_reason = (
                "cancelled" if deadline is None or time.monotonic() <= deadline else "time_limit"
            )
            break
        if not np.isfinite(net.theta).all():
            raise DivergenceError(offset + epoch + 1, -(-n // batch_size), lr)

        done = offset + epoch + 1
        metrics: dict[str, Any] = {"epoch": done, "train_loss": loss_sum / n}
        if accuracy is not None:
            metrics["train_accuracy"] = accuracy.result(order)
        if data.x_val.shape[0]:
            val = evaluate_validation(net, loss_fn, data, monitored=monitored)
            metrics.update({f"val_{k}": v for k, v in val.items()})
        metrics["learning_rate"] = lr
        metrics["seconds"] = time.perf_counter() - started
        history.append(metrics)
        schedule.update(epoch, metrics)
        stop = stopper.update(epoch + 1, metrics, net.theta)
        np.copyto(epoch_start_theta, net.theta)
        if on_epoch is not None:
            on_epoch(EpochEnd(done, offset + spec.epochs, metrics, partial(snapshot, done)))
        if stop:
            stop_reason = "early_stopping"
            break

    final_state = snapshot(offset + len(history))
    es = spec.early_stopping
    if stopper.best_theta is not None and es is not None and es.restore_best_weights:
        np.copyto(net.theta, stopper.best_theta)
    return history, stop_reason, final_state


def train(
    X: Any,
    y: Any,
    spec: TrainingSpec | dict[str, Any] | None = None,
    *,
    feature_names: list[str] | None = None,
    feature_types: list[FeatureType] | None = None,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: TrainingState | None = None,
    init_model: Model | None = None,
) -> TrainResult:
    """Train a dense network on raw features `X` and labels `y`.

    `spec` is a `TrainingSpec` or its dict; `on_epoch` is called after every epoch with an
    `EpochEnd`; `should_stop` is polled between batches (cancellation). Pass `resume` (a saved
    `TrainingState`) to continue a run exactly where that state left it. Pass `init_model` (a
    trained `Model`) to warm-start from its weights and preprocessing (models.warm_start); the
    spec's `epochs` are this run's, and the history counts on from the model's epochs.
    """
    spec = parse_spec(spec)
    init_seq, split_seq, shuffle_seq = np.random.SeedSequence(spec.seed).spawn(3)
    data, resolved = prepare_data(
        X,
        y,
        spec,
        feature_names=feature_names,
        feature_types=feature_types,
        split_rng=np.random.default_rng(split_seq),
        parent=init_model,
    )
    sizes = layer_sizes(resolved, data.preprocessor.n_inputs, n_outputs(data))
    net = network_for(resolved, sizes)
    warm: dict[str, Any] | None = None
    if init_model is None:
        net.initialize(initializers(resolved), np.random.default_rng(init_seq))
    else:
        if init_model.network.sizes != sizes:
            raise SpecError(
                "init_model",
                f"the model's layer sizes are {init_model.network.sizes}, this run's {sizes}",
            )
        np.copyto(net.theta, init_model.network.theta, casting="same_kind")
        warm = warm_start.marker(init_model)
    with subnormals_flushed():
        history, stop_reason, final_state = fit(
            net,
            data,
            resolved,
            shuffle_rng=np.random.default_rng(shuffle_seq),
            resume=resume,
            on_epoch=on_epoch,
            should_stop=should_stop,
            warm=warm,
        )
    model = Model(
        spec=resolved,
        network=net,
        preprocessor=data.preprocessor,
        label_encoder=data.label_encoder,
        target_scaler=data.target_scaler,
        epochs_trained=(0 if warm is None else int(warm["epochs"])) + len(history),
    )
    model.metrics = final_metrics(model, data)
    return TrainResult(
        model=model,
        history=history,
        stop_reason=stop_reason,
        spec=resolved,
        final_state=final_state,
    )
