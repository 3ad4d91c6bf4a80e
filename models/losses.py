"""Losses on the network's raw outputs (logits), fused with the output activation.

`value_and_grad(z, target, out=, scale=)` returns the batch-mean loss and `scale * dloss/dz`,
written into `out` when given. Fusing softmax (sigmoid) with its cross-entropy gives the simple,
stable gradient p - y and lets the trainer fold the learning rate into `scale`.
"""

from __future__ import annotations

import numpy as np

from models.activations import sigmoid
from models.types import Array


class Loss:
    name = "abstract"

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        raise NotImplementedError

    def outputs(self, z: Array) -> Array:
        """What the model answers: probabilities for classification, values for regression."""
        return z


class CategoricalCrossEntropy(Loss):
    """Softmax over K logits + cross-entropy against one-hot targets (n, K)."""

    name = "categorical_crossentropy"

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        n = z.shape[0]
        shifted = np.subtract(z, z.max(axis=1, keepdims=True), out=out)  # exp() cannot overflow
        true_logit = np.vdot(target, shifted)
        exp = np.exp(shifted, out=shifted)
        total = exp.sum(axis=1, keepdims=True)
        value = (np.log(total).sum() - true_logit) / n
        grad = np.divide(exp, total, out=exp)
        grad -= target
        grad *= scale / n
        return float(value), grad

    def outputs(self, z: Array) -> Array:
        p: Array = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return p


class BinaryCrossEntropy(Loss):
    """Sigmoid on one logit + binary cross-entropy against 0/1 targets (n, 1)."""

    name = "binary_crossentropy"

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        n = z.shape[0]
        # log(1 + e^z) - y z, computed without overflow for large |z|.
        value = (np.logaddexp(0.0, z) - target * z).sum() / n
        grad = sigmoid(z, out=out)
        grad -= target
        grad *= scale / n
        return float(value), grad

    def outputs(self, z: Array) -> Array:
        return sigmoid(z)


class MeanSquaredError(Loss):
    name = "mse"

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        residual = np.subtract(z, target, out=out)
        value = np.vdot(residual, residual) / residual.size
        residual *= 2.0 * scale / residual.size
        return float(value), residual


class MeanAbsoluteError(Loss):
    name = "mae"

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        residual = np.subtract(z, target, out=out)
        value = np.abs(residual).sum() / residual.size
        grad = np.sign(residual, out=residual)
        grad *= scale / residual.size
        return float(value), grad


class Huber(Loss):
    """Quadratic within `delta` of the target, linear beyond it (Keras' Huber, delta 1)."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = delta

    def value_and_grad(
        self, z: Array, target: Array, *, out: Array | None = None, scale: float = 1.0
    ) -> tuple[float, Array]:
        residual = np.subtract(z, target, out=out)
        abs_r = np.abs(residual)
        quadratic = np.minimum(abs_r, self.delta)
        value = (0.5 * quadratic * quadratic + self.delta * (abs_r - quadratic)).sum() / abs_r.size
        grad = np.clip(residual, -self.delta, self.delta, out=residual)
        grad *= scale / residual.size
        return float(value), grad


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        CategoricalCrossEntropy,
        BinaryCrossEntropy,
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
    )
}


def make_loss(name: str) -> Loss:
    return LOSSES[name]()
