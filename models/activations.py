"""Hidden-layer activations.

Each one writes its output in place (`forward(z)` overwrites z with a) and computes its derivative
from the output alone, so the network never keeps pre-activations: `backward(a, dy)` scales dy in
place by f'(z). Softmax and sigmoid outputs live in the losses, fused with their cross-entropies.
"""

from __future__ import annotations

import numpy as np

from models.types import Array


class Activation:
    name = "abstract"

    def forward(self, z: Array) -> None:
        """(n, d) -> (n, d), in place."""
        raise NotImplementedError

    def backward(self, a: Array, dy: Array) -> None:
        """dy *= f'(z), written in place; `a` is the forward output."""
        raise NotImplementedError


class Linear(Activation):
    name = "linear"

    def forward(self, z: Array) -> None:
        pass

    def backward(self, a: Array, dy: Array) -> None:
        pass


class ReLU(Activation):
    name = "relu"

    def __init__(self) -> None:
        self._mask: Array | None = None

    def forward(self, z: Array) -> None:
        np.maximum(z, 0, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        # Reusing one bool buffer keeps the hot path to two ufunc calls and no allocation.
        mask = self._mask
        if mask is None or mask.shape != a.shape:
            mask = self._mask = np.empty(a.shape, dtype=bool)
        np.greater(a, 0, out=mask)
        np.multiply(dy, mask, out=dy)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def forward(self, z: Array) -> None:
        np.maximum(z, self.alpha * z, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        dy *= np.where(a > 0, 1.0, self.alpha).astype(dy.dtype, copy=False)


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, z: Array) -> None:
        negative = z <= 0
        z[negative] = self.alpha * np.expm1(z[negative])

    def backward(self, a: Array, dy: Array) -> None:
        # For z <= 0, f'(z) = alpha * exp(z) = a + alpha.
        dy *= np.where(a > 0, 1.0, a + self.alpha).astype(dy.dtype, copy=False)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z: Array) -> None:
        np.tanh(z, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        dy *= 1.0 - a * a


def sigmoid(z: Array, out: Array | None = None) -> Array:
    """Logistic function without overflow: 0.5 * (1 + tanh(z / 2))."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z: Array) -> None:
        sigmoid(z, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        dy *= a * (1.0 - a)


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Linear, ReLU, LeakyReLU, ELU, Tanh, Sigmoid)
}


def make_activation(name: str) -> Activation:
    return ACTIVATIONS[name]()
