"""Losses on the network's raw outputs (logits), fused with the output activation.

`value_and_grad(z, target, out=, scale=, weights=)` returns the batch-mean loss and
`scale * dloss/dz`, written into `out` when given. Fusing softmax (sigmoid) with its
cross-entropy gives the simple, stable gradient p - y and lets the trainer fold the learning
rate into `scale`.

Per-sample `weights` (n, 1) (class weights; the cross-entropies only) follow Keras: the value is
the mean of w_i * l_i over the batch, not sum(w_i l_i) / sum(w_i), and the gradient is that
mean's. Keras' choice keeps weights working at batch size 1, where a normalized mean would
cancel them.

Label smoothing needs nothing here: the trainer smooths the targets once (`smooth_targets`), and
both cross-entropies are exact for soft targets (rows of a categorical target summing to 1).
"""

from __future__ import annotations

import numpy as np

from models.activations import sigmoid
from models.types import Array


def _vdot(a: Array, b: Array) -> float:
    """sum(a * b) for arrays of one shape. The trainer's logits and targets are transposed views
    of feature-major (K, n) buffers: their transposes are contiguous, so np.vdot (which copies
    what is not C-contiguous) reads them in place. Either way each a[i] meets its b[i]."""
    if a.ndim == 2 and a.strides[0] < a.strides[1]:
        return float(np.vdot(a.T, b.T))
    return float(np.vdot(a, b))


class Loss:
    name = "abstract"

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        raise NotImplementedError

    def outputs(self, z: Array) -> Array:
        """What the model answers: float64 class probabilities (n, K), or the values."""
        return z


class CategoricalCrossEntropy(Loss):
    """Softmax over K logits + cross-entropy against one-hot (or smoothed) targets (n, K)."""

    name = "categorical_crossentropy"

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        n = z.shape[0]
        shifted = np.subtract(z, z.max(axis=1, keepdims=True), out=out)  # exp() cannot overflow
        if weights is None:
            true_logit = _vdot(target, shifted)
        else:
            true_rows = np.einsum("ij,ij->i", target, shifted)
        exp = np.exp(shifted, out=shifted)
        total = exp.sum(axis=1, keepdims=True)
        if weights is None:
            value = (float(np.log(total).sum()) - true_logit) / n
        else:
            value = np.vdot(weights[:, 0], np.log(total[:, 0]) - true_rows) / n
        grad = np.divide(exp, total, out=exp)
        grad -= target
        if weights is not None:
            grad *= weights
        grad *= scale / n
        return float(value), grad

    def outputs(self, z: Array) -> Array:
        p: Array = z.astype(np.float64)  # a copy, worked in place
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        return p


class BinaryCrossEntropy(Loss):
    """Sigmoid on one logit + binary cross-entropy against 0/1 (or smoothed) targets (n, 1)."""

    name = "binary_crossentropy"

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        n = z.shape[0]
        # log(1 + e^z) - y z, computed without overflow for large |z|.
        if weights is None:
            value = (np.logaddexp(0.0, z) - target * z).sum() / n
        else:
            value = np.vdot(weights, np.logaddexp(0.0, z) - target * z) / n
        grad = sigmoid(z, out=out)
        grad -= target
        if weights is not None:
            grad *= weights
        grad *= scale / n
        return float(value), grad

    def outputs(self, z: Array) -> Array:
        """(n, 2): [p(first class), p(second class)] = [sigmoid(-z), sigmoid(z)] in float64,
        each column from its own logit as exp(-log(1 + e^-x)): never 1 - p, which rounds to an
        exact 0 long before the probability is that small (and float32 reaches 1.0 at z ~ 17)."""
        z64 = np.asarray(z, dtype=np.float64)
        p: Array = np.exp(-np.logaddexp(0.0, np.hstack([z64, -z64])))
        return p


def _unweighted(name: str, weights: Array | None) -> None:
    if weights is not None:
        raise ValueError(f"{name} takes no sample weights (class weights are for classification)")


class MeanSquaredError(Loss):
    name = "mse"

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        _unweighted(self.name, weights)
        residual = np.subtract(z, target, out=out)
        value = _vdot(residual, residual) / residual.size
        residual *= 2.0 * scale / residual.size
        return float(value), residual


class MeanAbsoluteError(Loss):
    name = "mae"

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        _unweighted(self.name, weights)
        residual = np.subtract(z, target, out=out)
        value = np.abs(residual).sum() / residual.size
        grad = np.sign(residual, out=residual)
        grad *= scale / residual.size
        return float(value), grad


class Huber(Loss):
    """Quadratic within `delta` of the target, linear beyond it (Keras' Huber; the spec's
    huber_delta, default 1). Regression targets are standardized, so delta is in units of the
    target's standard deviation."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = delta

    def value_and_grad(
        self,
        z: Array,
        target: Array,
        *,
        out: Array | None = None,
        scale: float = 1.0,
        weights: Array | None = None,
    ) -> tuple[float, Array]:
        _unweighted(self.name, weights)
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


def make_loss(name: str, *, huber_delta: float | None = None) -> Loss:
    if name == Huber.name:
        return Huber(1.0 if huber_delta is None else huber_delta)
    return LOSSES[name]()


def smooth_targets(targets: Array, smoothing: float, loss: str) -> Array:
    """Keras' label smoothing: one-hot y * (1 - s) + s / K; a binary 0/1 y * (1 - s) + s / 2."""
    if smoothing == 0.0:
        return targets
    k = 2 if loss == BinaryCrossEntropy.name else targets.shape[1]
    smoothed: Array = (targets * (1.0 - smoothing) + smoothing / k).astype(targets.dtype)
    return smoothed
