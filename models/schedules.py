"""Per-epoch learning-rate schedules and early stopping, each with plain-data state for resume."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.spec import EarlyStoppingSpec, ScheduleSpec
from models.types import Array


def _improved(value: float, best: float | None, min_delta: float, mode: str) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def monitor_mode(monitor: str) -> str:
    return "max" if monitor.endswith("accuracy") else "min"


class Schedule:
    """`lr(epoch)` for a 0-based epoch; `update(metrics)` after the epoch ends."""

    def __init__(self, spec: ScheduleSpec, base_lr: float, epochs: int) -> None:
        self.spec, self.base_lr, self.epochs = spec, base_lr, epochs
        # plateau state
        self.scale = 1.0
        self.best: float | None = None
        self.wait = 0

    def lr(self, epoch: int) -> float:
        s = self.spec
        if s.name == "step":
            return self.base_lr * s.gamma ** (epoch // s.step_size)
        if s.name == "exponential":
            return self.base_lr * s.gamma**epoch
        if s.name == "cosine":
            progress = epoch / max(1, self.epochs - 1)
            return s.min_lr + (self.base_lr - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if s.name == "plateau":
            return max(self.base_lr * self.scale, s.min_lr)
        return self.base_lr

    def update(self, metrics: dict[str, Any]) -> None:
        if self.spec.name != "plateau":
            return
        value = float(metrics[self.spec.monitor])
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
        value = float(metrics[spec.monitor])
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
