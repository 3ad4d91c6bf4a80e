"""Optimizers over the network's flat parameter vector, with Keras 3's update rules.

Each keeps its own buffers (`state()` / `load_state()` for exact resume). `grad_scale(lr)` is the
factor the trainer folds into the loss gradient: SGD asks for -lr so its gradient arrives as the
step itself, saving a full pass over the parameters per step; adaptive methods ask for 1.
Weight decay is decoupled (w -= lr * wd * w, weights only), so adamw is Adam with Keras 3 AdamW's
default decay (resolved in the spec); clipnorm clips the global norm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.spec import OptimizerSpec
from models.types import Array


class Optimizer:
    def __init__(self, spec: OptimizerSpec, theta: Array, weight_mask: Array) -> None:
        self.spec = spec
        self.steps = 0
        self._buffers: dict[str, Array] = {}
        self._tmp = np.empty_like(theta)
        self._weight_mask = weight_mask
        self._decay_lr = math.nan
        self._decay: Array | None = None

    def grad_scale(self, lr: float) -> float:
        return 1.0

    def step(self, theta: Array, grad: Array, lr: float) -> None:
        raise NotImplementedError

    def _buffer(self, name: str, like: Array, fill: float = 0.0) -> Array:
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = np.full_like(like, fill)
        return buf

    def _clip(self, grad: Array, grad_scale: float) -> None:
        clipnorm = self.spec.clipnorm
        if clipnorm is None:
            return
        norm = math.sqrt(float(np.vdot(grad, grad))) / abs(grad_scale)
        if norm > clipnorm:
            grad *= clipnorm / norm

    def _decay_weights(self, theta: Array, lr: float) -> None:
        decay = self.spec.weight_decay
        if not decay:
            return
        if self._decay is None or lr != self._decay_lr:
            self._decay = self._weight_mask * (lr * decay)
            self._decay_lr = lr
        np.multiply(theta, self._decay, out=self._tmp)
        theta -= self._tmp

    def _moments(
        self, theta: Array, grad: Array, b1: float, b2: float
    ) -> tuple[Array, Array, Array]:
        """Adam's moving averages m of g and v of g^2, updated in place; returns m, v and the
        scratch buffer."""
        m, v, tmp = self._buffer("m", theta), self._buffer("v", theta), self._tmp
        m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        return m, v, tmp

    def state(self) -> tuple[dict[str, Array], dict[str, Any]]:
        return {k: v.copy() for k, v in self._buffers.items()}, {"steps": self.steps}

    def load_state(self, buffers: dict[str, Array], meta: dict[str, Any]) -> None:
        self._buffers = {k: np.array(v, dtype=self._tmp.dtype) for k, v in buffers.items()}
        self.steps = int(meta["steps"])


class SGD(Optimizer):
    """v = momentum * v - lr * g; w += v (Nesterov: w += momentum * v - lr * g)."""

    def __init__(self, spec: OptimizerSpec, theta: Array, weight_mask: Array) -> None:
        super().__init__(spec, theta, weight_mask)
        # Neither clipping nor decay: a step is two or three whole-vector ufunc calls.
        self._plain = spec.clipnorm is None and not spec.weight_decay

    def grad_scale(self, lr: float) -> float:
        return -lr

    def step(self, theta: Array, grad: Array, lr: float) -> None:
        # `grad` already holds -lr * g.
        self.steps += 1
        if not self._plain:
            self._clip(grad, lr)
            self._decay_weights(theta, lr)
        momentum = self.spec.momentum or 0.0
        if momentum == 0.0:
            theta += grad
            return
        velocity = self._buffers.get("velocity")
        if velocity is None:
            velocity = self._buffer("velocity", theta)
        velocity *= momentum
        velocity += grad
        if self.spec.nesterov:
            np.multiply(velocity, momentum, out=self._tmp)
            self._tmp += grad
            theta += self._tmp
        else:
            theta += velocity


class Adam(Optimizer):
    """Keras 3 Adam (and AdamW): w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps);
    with amsgrad, v is replaced by its running maximum."""

    def step(self, theta: Array, grad: Array, lr: float) -> None:
        self.steps += 1
        self._clip(grad, 1.0)
        self._decay_weights(theta, lr)
        b1, b2 = self.spec.beta_1, self.spec.beta_2
        m, v, tmp = self._moments(theta, grad, b1, b2)
        alpha = lr * math.sqrt(1.0 - b2**self.steps) / (1.0 - b1**self.steps)
        if self.spec.amsgrad:
            v_max = self._buffer("v_hat", theta)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        np.sqrt(v, out=tmp)
        tmp += self.spec.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= alpha
        theta -= tmp


class Nadam(Optimizer):
    """Keras 3 Nadam: Adam with Nesterov momentum and Dozat's momentum schedule
    u_t = b1 * (1 - 0.5 * 0.96^t); its running product of u_t is part of the state."""

    SCHEDULE_DECAY = 0.96

    def __init__(self, spec: OptimizerSpec, theta: Array, weight_mask: Array) -> None:
        super().__init__(spec, theta, weight_mask)
        self.u_product = 1.0

    def step(self, theta: Array, grad: Array, lr: float) -> None:
        self.steps += 1
        self._clip(grad, 1.0)
        self._decay_weights(theta, lr)
        b1, b2, t = self.spec.beta_1, self.spec.beta_2, self.steps
        u_t = b1 * (1.0 - 0.5 * self.SCHEDULE_DECAY**t)
        u_next = b1 * (1.0 - 0.5 * self.SCHEDULE_DECAY ** (t + 1))
        self.u_product *= u_t
        u_product_next = self.u_product * u_next
        m, v, tmp = self._moments(theta, grad, b1, b2)
        # m_hat = u_next m / (1 - prod_next) + (1 - u_t) g / (1 - prod), built in `grad`
        # (the next backward overwrites it anyway).
        grad *= (1.0 - u_t) / (1.0 - self.u_product)
        np.multiply(m, u_next / (1.0 - u_product_next), out=tmp)
        grad += tmp
        np.multiply(v, 1.0 / (1.0 - b2**t), out=tmp)  # v_hat
        np.sqrt(tmp, out=tmp)
        tmp += self.spec.epsilon
        np.divide(grad, tmp, out=tmp)
        tmp *= lr
        theta -= tmp

    def state(self) -> tuple[dict[str, Array], dict[str, Any]]:
        buffers, meta = super().state()
        return buffers, {**meta, "u_product": self.u_product}

    def load_state(self, buffers: dict[str, Array], meta: dict[str, Any]) -> None:
        super().load_state(buffers, meta)
        self.u_product = float(meta["u_product"])


class RMSprop(Optimizer):
    def step(self, theta: Array, grad: Array, lr: float) -> None:
        self.steps += 1
        self._clip(grad, 1.0)
        self._decay_weights(theta, lr)
        rho, tmp = self.spec.rho, self._tmp
        v = self._buffer("v", theta)
        v *= rho
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - rho
        v += tmp
        np.add(v, self.spec.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(grad, tmp, out=tmp)
        tmp *= lr
        momentum = self.spec.momentum or 0.0
        if momentum:
            velocity = self._buffer("velocity", theta)
            velocity *= momentum
            velocity += tmp
            theta -= velocity
        else:
            theta -= tmp


class Adagrad(Optimizer):
    INITIAL_ACCUMULATOR = 0.1

    def step(self, theta: Array, grad: Array, lr: float) -> None:
        self.steps += 1
        self._clip(grad, 1.0)
        self._decay_weights(theta, lr)
        tmp = self._tmp
        acc = self._buffer("accumulator", theta, self.INITIAL_ACCUMULATOR)
        np.multiply(grad, grad, out=tmp)
        acc += tmp
        np.add(acc, self.spec.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(grad, tmp, out=tmp)
        tmp *= lr
        theta -= tmp


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": Adam,  # the decay is the difference, and it is decoupled in every optimizer
    "nadam": Nadam,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def make_optimizer(spec: OptimizerSpec, theta: Array, weight_mask: Array) -> Optimizer:
    return OPTIMIZERS[spec.name](spec, theta, weight_mask)
