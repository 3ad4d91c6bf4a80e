"""L2 weight penalties (per layer, Keras' L2: l2 * sum(W ** 2), biases exempt), folded into the
loss the trainer reports and into the gradient the optimizer steps on.

Dropout lives in the network's forward pass (models.network); per-sample class weights in the
losses (models.losses). A spec without l2 builds no penalty at all: the step loop then makes
not a single numpy call for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.network import Network
from models.types import Array


class L2Penalty:
    def __init__(self, net: Network, l2: Sequence[float]) -> None:
        if len(l2) != len(net.layers):
            raise ValueError("one l2 coefficient per layer")
        self._terms: list[tuple[Array, Array, float, Array]] = [
            (layer.params["W"], layer.grads["W"], c, np.empty_like(layer.params["W"]))
            for layer, c in zip(net.layers, l2, strict=True)
            if c
        ]

    @classmethod
    def for_network(cls, net: Network, hidden_l2: Sequence[float]) -> L2Penalty | None:
        """The penalty of the hidden layers' l2 (the output layer has none), or None."""
        return cls(net, [*hidden_l2, 0.0]) if any(hidden_l2) else None

    def value(self) -> float:
        return sum(c * float(np.vdot(w, w)) for w, _, c, _ in self._terms)

    def apply(self, grad_scale: float) -> float:
        """After backward: grads += grad_scale * d(penalty)/dW; returns the penalty."""
        total = 0.0
        for w, dw, c, tmp in self._terms:
            total += c * float(np.vdot(w, w))
            np.multiply(w, 2.0 * c * grad_scale, out=tmp)
            dw += tmp
        return total
