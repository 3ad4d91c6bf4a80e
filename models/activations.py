"""Hidden-layer activations.

Each one writes its output in place (`forward(z)` overwrites z with a); `backward(a, dy)` then
scales dy in place by f'(z). Most compute f' from the output alone, so the network keeps no
pre-activations. GELU and SiLU cannot (their output does not determine z), so in training they
keep what f' needs in buffers of their own, one set per batch shape; `infer` (prediction) keeps
nothing. `backward` must follow its `forward` once. Softmax and sigmoid outputs live in the
losses, fused with their cross-entropies.
"""

from __future__ import annotations

import math

import numpy as np

from models.types import Array


class Activation:
    name = "abstract"

    def forward(self, z: Array) -> None:
        """(n, d) -> (n, d), in place; training: may keep what `backward` needs."""
        raise NotImplementedError

    def infer(self, z: Array) -> None:
        """As `forward`, for prediction: keeps nothing."""
        self.forward(z)

    def backward(self, a: Array, dy: Array) -> None:
        """dy *= f'(z), written in place; `a` is the forward output."""
        raise NotImplementedError


class _Scratch:
    """Buffers reused across steps, one set per (shape, dtype): no allocation in training."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._sets: dict[tuple[tuple[int, ...], np.dtype[np.generic]], tuple[Array, ...]] = {}

    def get(self, like: Array) -> tuple[Array, ...]:
        key = (like.shape, like.dtype)
        bufs = self._sets.get(key)
        if bufs is None:
            bufs = self._sets[key] = tuple(
                np.empty(like.shape, like.dtype) for _ in range(self._count)
            )
        return bufs


class Linear(Activation):
    name = "linear"

    def forward(self, z: Array) -> None:
        pass

    def backward(self, a: Array, dy: Array) -> None:
        pass


class ReLU(Activation):
    """max(z, 0). The forward keeps the mask z > 0, as 0.0 / 1.0 in z's dtype, for the
    backward: a compare and a multiply cost less than np.maximum alone (measured on (512, 256)
    float32: 26 us against 40), and the backward is then one float multiply (8 us; by a bool
    mask, which numpy casts on the fly, 16 us)."""

    name = "relu"

    def __init__(self) -> None:
        self._mask: Array | None = None

    def forward(self, z: Array) -> None:
        # One mask buffer per shape, reused: no allocation in the training loop.
        mask = self._mask
        if mask is None or mask.shape != z.shape or mask.dtype != z.dtype:
            mask = self._mask = np.empty(z.shape, dtype=z.dtype)
        np.greater(z, 0, out=mask)
        np.multiply(z, mask, out=z)

    def infer(self, z: Array) -> None:
        np.maximum(z, 0, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        mask = self._mask
        assert mask is not None and mask.shape == a.shape, "backward before forward"
        np.multiply(dy, mask, out=dy)


class LeakyReLU(Activation):
    """max(z, alpha z), 0 <= alpha <= 1 (the spec checks it): a > 0 exactly when z > 0."""

    name = "leaky_relu"
    DEFAULT_ALPHA = 0.01

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = alpha

    def forward(self, z: Array) -> None:
        np.maximum(z, self.alpha * z, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        dy *= np.where(a > 0, 1.0, self.alpha).astype(dy.dtype, copy=False)


class ELU(Activation):
    """z for z > 0, alpha (e^z - 1) otherwise; alpha > 0, so a > 0 exactly when z > 0."""

    name = "elu"
    DEFAULT_ALPHA = 1.0

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = alpha

    def forward(self, z: Array) -> None:
        negative = z <= 0
        z[negative] = self.alpha * np.expm1(z[negative])

    def backward(self, a: Array, dy: Array) -> None:
        # For z <= 0, f'(z) = alpha * exp(z) = a + alpha.
        dy *= np.where(a > 0, 1.0, a + self.alpha).astype(dy.dtype, copy=False)


class SELU(Activation):
    """scale * elu(z, alpha) with Keras' (Klambauer et al.'s) constants."""

    name = "selu"
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def forward(self, z: Array) -> None:
        negative = z <= 0
        z[negative] = self.ALPHA * np.expm1(z[negative])
        z *= self.SCALE

    def backward(self, a: Array, dy: Array) -> None:
        # For z <= 0, f'(z) = scale * alpha * exp(z) = a + scale * alpha.
        slope = np.where(a > 0, self.SCALE, a + self.SCALE * self.ALPHA)
        dy *= slope.astype(dy.dtype, copy=False)


class Softplus(Activation):
    """log(1 + e^z). Its output does give f': sigmoid(z) = 1 - e^-a = -expm1(-a)."""

    name = "softplus"

    def __init__(self) -> None:
        self._scratch = _Scratch(1)

    def forward(self, z: Array) -> None:
        np.logaddexp(0.0, z, out=z)

    def backward(self, a: Array, dy: Array) -> None:
        (tmp,) = self._scratch.get(a)
        np.negative(a, out=tmp)
        np.expm1(tmp, out=tmp)  # = -f'(z)
        np.multiply(dy, tmp, out=dy)
        np.negative(dy, out=dy)


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


class SiLU(Activation):
    """z * sigmoid(z) (Keras' silu, alias swish). f' = s + a (1 - s) with s = sigmoid(z): the
    forward keeps s."""

    name = "silu"

    def __init__(self) -> None:
        self._scratch = _Scratch(2)

    def forward(self, z: Array) -> None:
        s, _ = self._scratch.get(z)
        sigmoid(z, out=s)
        z *= s

    def infer(self, z: Array) -> None:
        z *= sigmoid(z)

    def backward(self, a: Array, dy: Array) -> None:
        s, tmp = self._scratch.get(a)
        np.subtract(1.0, s, out=tmp)
        tmp *= a
        tmp += s
        np.multiply(dy, tmp, out=dy)


class GELU(Activation):
    """The tanh approximation of GELU, as Keras' gelu(approximate=True) and PyTorch's
    GELU(approximate="tanh"): 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))). Note that Keras'
    default is the exact, erf-based GELU; the two differ by less than 1e-3.

    The forward keeps z and t = tanh(...): f' = 0.5 (1 + t) (1 + q (1 - t)) with
    q = sqrt(2/pi) z (1 + 3 * 0.044715 z^2)."""

    name = "gelu"
    C = math.sqrt(2.0 / math.pi)
    K = 0.044715

    def __init__(self) -> None:
        self._scratch = _Scratch(3)

    def _tanh_term(self, z: Array, t: Array) -> None:
        np.multiply(z, z, out=t)
        t *= self.K
        t += 1.0
        t *= z
        t *= self.C
        np.tanh(t, out=t)

    def forward(self, z: Array) -> None:
        kept, t, _ = self._scratch.get(z)
        np.copyto(kept, z)
        self._tanh_term(kept, t)
        np.add(t, 1.0, out=z)
        z *= kept
        z *= 0.5

    def infer(self, z: Array) -> None:
        t = np.empty_like(z)
        self._tanh_term(z, t)
        t += 1.0
        t *= 0.5
        z *= t

    def backward(self, a: Array, dy: Array) -> None:
        kept, t, q = self._scratch.get(a)
        np.multiply(kept, kept, out=q)
        q *= 3.0 * self.K
        q += 1.0
        q *= kept
        q *= self.C
        np.subtract(1.0, t, out=kept)  # z is no longer needed: reuse its buffer for 1 - t
        q *= kept
        q += 1.0
        t += 1.0
        t *= 0.5
        np.multiply(dy, t, out=dy)
        np.multiply(dy, q, out=dy)


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (Linear, ReLU, LeakyReLU, ELU, SELU, Softplus, Tanh, Sigmoid, SiLU, GELU)
}
ALIASES = {"swish": "silu"}
# The activations with a parameter alpha, and its default when the spec leaves it out.
ALPHA_DEFAULTS = {LeakyReLU.name: LeakyReLU.DEFAULT_ALPHA, ELU.name: ELU.DEFAULT_ALPHA}


def make_activation(name: str, alpha: float | None = None) -> Activation:
    name = ALIASES.get(name, name)
    if name == LeakyReLU.name:
        return LeakyReLU(LeakyReLU.DEFAULT_ALPHA if alpha is None else alpha)
    if name == ELU.name:
        return ELU(ELU.DEFAULT_ALPHA if alpha is None else alpha)
    if alpha is not None:
        raise ValueError(f"the activation {name!r} takes no alpha")
    return ACTIVATIONS[name]()
