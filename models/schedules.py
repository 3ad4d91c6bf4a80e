"""Per-epoch learning-rate schedules and early stopping, each with plain-data state for resume.

Epochs here are the run's own, counted from 0 (a warm start's schedule starts afresh).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.errors import SpecError
from models.spec import EarlyStoppingSpec, ScheduleSpec, monitor_mode
from models.types import Array


def _improved(value: float, best: float | None, min_delta: float, mode: str) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def monitored(metrics: dict[str, Any], monitor: str, field: str) -> float:
    """The monitored value; a metric the run does not report is an error, not a monitor that
    silently never triggers."""
    if monitor not in metrics:
        reported = ", ".join(k for k in metrics if k.startswith(("val_", "train_")))
        raise SpecError(field, f"{monitor} is not among this run's metrics ({reported})")
    return float(metrics[monitor])


def _cosine(start: float, end: float, pct: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * pct))


class Schedule:
    """`lr(epoch)` for a 0-based epoch; `update(epoch, metrics)` after that epoch ends."""

    def __init__(self, spec: ScheduleSpec, base_lr: float, epochs: int) -> None:
        self.spec, self.base_lr, self.epochs = spec, base_lr, epochs
        # plateau state
        self.scale = 1.0
        self.best: float | None = None
        self.wait = 0

    def lr(self, epoch: int) -> float:
        s = self.spec
        warmup = s.warmup_epochs
        if epoch < warmup:  # linear: lr / (W + 1), 2 lr / (W + 1), ..., then lr at epoch W
            return self.base_lr * (epoch + 1) / (warmup + 1)
        epoch -= warmup
        remaining = self.epochs - warmup
        if s.name == "step":
            return self.base_lr * s.gamma ** (epoch // s.step_size)
        if s.name == "exponential":
            return self.base_lr * s.gamma**epoch
        if s.name == "cosine":
            return _cosine(self.base_lr, s.min_lr, epoch / max(1, remaining - 1))
        if s.name == "plateau":
            return max(self.base_lr * self.scale, s.min_lr)
        if s.name == "onecycle":
            return self._one_cycle(epoch, remaining)
        return self.base_lr

    def _one_cycle(self, step: int, total: int) -> float:
        """PyTorch's OneCycleLR (two phases, cosine annealing) with one step per epoch."""
        s = self.spec
        initial = self.base_lr / s.div_factor
        final = initial / s.final_div_factor
        peak = s.pct_start * total - 1.0  # the step that reaches the maximum, as PyTorch's
        if step <= peak:
            start, end, lr_start, lr_end = 0.0, peak, initial, self.base_lr
        else:  # PyTorch counts the second phase from the first one's end step
            start, end, lr_start, lr_end = peak, total - 1.0, self.base_lr, final
        # A phase of no length (PyTorch divides by zero there) is at its end already.
        pct = (step - start) / (end - start) if end > start else 1.0
        return _cosine(lr_start, lr_end, pct)

    def update(self, epoch: int, metrics: dict[str, Any]) -> None:
        if self.spec.name != "plateau" or epoch < self.spec.warmup_epochs:
            return  # plateau watches the epochs after warmup only
        value = monitored(metrics, self.spec.monitor, "schedule.monitor")
        if _improved(value, self.best, self.spec.min_delta, monitor_mode(self.spec.monitor)):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.spec.patience:
            self.scale *= self.spec.factor
            self.wait = 0

    def state(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "wait": self.wait}

    def load_state(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.wait = state["scale"], state["best"], state["wait"]


class EarlyStopping:
    """Keras' EarlyStopping: stop after `patience` epochs without improvement of `monitor`."""

    def __init__(self, spec: EarlyStoppingSpec | None) -> None:
        self.spec = spec
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_theta: Array | None = None

    def update(self, epoch: int, metrics: dict[str, Any], theta: Array) -> bool:
        """Record epoch `epoch` (1-based); True when training should stop."""
        spec = self.spec
        if spec is None:
            return False
        value = monitored(metrics, spec.monitor, "early_stopping.monitor")
        if _improved(value, self.best, spec.min_delta, monitor_mode(spec.monitor)):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if spec.restore_best_weights:
                if self.best_theta is None:
                    self.best_theta = theta.copy()
                else:
                    np.copyto(self.best_theta, theta)
            return False
        self.wait += 1
        return self.wait >= spec.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict[str, Any], best_theta: Array | None) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_theta = None if best_theta is None else best_theta.copy()
