"""A dense network whose parameters live in one flat vector.

Layer i owns a (d_in + 1, d_out) block `[W; b]` of the flat vector, and its input buffer carries a
trailing column of ones, so the bias rides in the same GEMM as the weights (forward: one matmul;
backward: one matmul gives dW and db together). One flat vector for the parameters and one for
their gradients turn every optimizer update into a handful of whole-vector ufunc calls. For small
networks the number of numpy calls per step, not the FLOPs, decides the speed.

Dropout (per hidden layer, training only) writes the activation's output to a buffer of its own
and the masked copy to the next layer's input; a network without dropout never touches masks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from models.activations import Activation, Linear, make_activation
from models.spec import TrainingSpec
from models.types import Array


class Dense:
    """(n, d_in) -> (n, d_out): activation(x @ W + b); `params`/`grads` share the keys W, b."""

    def __init__(
        self, d_in: int, d_out: int, activation: Activation, params: Array, grads: Array
    ) -> None:
        self.d_in, self.d_out = d_in, d_out
        self.activation = activation
        self.W_aug = params.reshape(d_in + 1, d_out)
        self.dW_aug = grads.reshape(d_in + 1, d_out)
        self.params = {"W": self.W_aug[:-1], "b": self.W_aug[-1]}
        self.grads = {"W": self.dW_aug[:-1], "b": self.dW_aug[-1]}
        self._x_aug: Array | None = None
        self._a: Array | None = None

    def forward(self, x_aug: Array, out: Array) -> Array:
        """x_aug: (n, d_in + 1) whose last column is 1; writes activation(x W + b) into `out`."""
        np.matmul(x_aug, self.W_aug, out=out)
        self.activation.forward(out)
        self._x_aug, self._a = x_aug, out
        return out

    def backward(self, da: Array, dx_out: Array | None) -> None:
        """da: dL/d(output), turned into dL/dz in place; fills grads and, if asked, dL/dx."""
        assert self._x_aug is not None and self._a is not None, "backward before forward"
        self.activation.backward(self._a, da)
        if da.shape[0] == 1:
            # matmul handles the (d, 1) x (1, m) outer product ~10x slower than broadcasting.
            np.multiply(self._x_aug.T, da, out=self.dW_aug)
        else:
            np.matmul(self._x_aug.T, da, out=self.dW_aug)
        if dx_out is not None:
            np.matmul(da, self.params["W"].T, out=dx_out)

    def infer(self, x: Array) -> Array:
        """Forward pass without augmentation or caching, for prediction."""
        z: Array = x @ self.params["W"]
        z += self.params["b"]
        self.activation.infer(z)
        return z


class _Workspace:
    """Preallocated buffers for one batch size: no allocation in the training loop."""

    def __init__(
        self, n: int, sizes: list[int], dtype: np.dtype[np.floating], dropout: list[float]
    ) -> None:
        # inputs[i] feeds layer i + 1: the previous layer's output plus a column of ones.
        self.inputs = []
        for d in sizes[1:-1]:
            buf = np.empty((n, d + 1), dtype=dtype)
            buf[:, -1] = 1.0
            self.inputs.append(buf)
        self.outputs = [buf[:, :-1] for buf in self.inputs]
        self.logits = np.empty((n, sizes[-1]), dtype=dtype)
        self.outputs.append(self.logits)
        self.dlogits = np.empty((n, sizes[-1]), dtype=dtype)
        # d_outputs[i] receives dL/d(output of layer i) from layer i + 1's backward.
        self.d_outputs = [np.empty((n, d), dtype=dtype) for d in sizes[1:-1]]
        # Per layer with dropout: its activation's output (what its backward needs) and the
        # scaled keep-mask, 0 or 1 / (1 - p); None elsewhere.
        shapes = [(n, d) if p else None for d, p in zip(sizes[1:], dropout, strict=True)]
        self.kept = [None if s is None else np.empty(s, dtype=dtype) for s in shapes]
        self.masks = [None if s is None else np.empty(s, dtype=dtype) for s in shapes]
        self.keeps = [None if s is None else np.empty(s, dtype=bool) for s in shapes]
        self.dropped = False  # whether the last forward applied the masks


class Network:
    """Dense layers `sizes[0] -> ... -> sizes[-1]`; the last layer is linear (the loss fuses the
    output activation)."""

    def __init__(
        self,
        sizes: list[int],
        activations: list[str],
        dtype: str = "float32",
        *,
        alphas: Sequence[float | None] | None = None,
        dropout: Sequence[float] | None = None,
    ) -> None:
        if len(activations) != len(sizes) - 2:
            raise ValueError("one activation per hidden layer")
        self.sizes = list(sizes)
        self.dtype = np.dtype(dtype)
        blocks = [(d_in + 1) * d_out for d_in, d_out in itertools.pairwise(sizes)]
        offsets = np.concatenate([[0], np.cumsum(blocks)]).tolist()
        self._offsets: list[int] = offsets
        self.theta = np.zeros(offsets[-1], dtype=self.dtype)
        self.grad = np.zeros(offsets[-1], dtype=self.dtype)
        alphas = list(alphas) if alphas is not None else [None] * len(activations)
        acts: list[Activation] = [
            make_activation(a, alpha) for a, alpha in zip(activations, alphas, strict=True)
        ] + [Linear()]
        # Per layer, the output layer's always 0: dropout acts on hidden layers' outputs.
        self.dropout = [*(dropout or [0.0] * len(activations)), 0.0]
        if len(self.dropout) != len(sizes) - 1:
            raise ValueError("one dropout rate per hidden layer")
        self.has_dropout = any(self.dropout)
        self.layers = [
            Dense(d_in, d_out, act, self.theta[lo:hi], self.grad[lo:hi])
            for d_in, d_out, act, lo, hi in zip(
                sizes, sizes[1:], acts, offsets, offsets[1:], strict=False
            )
        ]
        self._workspaces: dict[int, _Workspace] = {}

    @property
    def n_parameters(self) -> int:
        return int(self.theta.size)

    def weight_mask(self) -> Array:
        """1 for weights, 0 for biases: weight decay leaves biases alone."""
        mask = np.ones_like(self.theta)
        for layer, start in zip(self.layers, self._offsets, strict=False):
            bias_start = start + layer.d_in * layer.d_out
            mask[bias_start : bias_start + layer.d_out] = 0.0
        return mask

    def initialize(self, initializer: str | Sequence[str], rng: np.random.Generator) -> None:
        """Zero biases; weights as Keras' he_* / glorot_* / lecun_* (normal ones plain, not
        truncated). One name for every layer, or one per layer (the output layer's last)."""
        names = [initializer] * len(self.layers) if isinstance(initializer, str) else initializer
        for layer, name in zip(self.layers, names, strict=True):
            family, _, distribution = name.partition("_")
            fan_in, fan_out = layer.d_in, layer.d_out
            fan = (fan_in + fan_out) / 2.0 if family == "glorot" else fan_in
            gain = 2.0 if family == "he" else 1.0
            shape = (fan_in, fan_out)
            if distribution == "uniform":
                limit = math.sqrt(3.0 * gain / fan)
                w = rng.uniform(-limit, limit, size=shape)
            else:
                w = rng.normal(0.0, math.sqrt(gain / fan), size=shape)
            layer.params["W"][...] = w  # drawn in float64: float32 and float64 start alike
            layer.params["b"][...] = 0.0

    def workspace(self, n: int) -> _Workspace:
        ws = self._workspaces.get(n)
        if ws is None:
            ws = self._workspaces[n] = _Workspace(n, self.sizes, self.dtype, self.dropout)
        return ws

    def forward(
        self, x_aug: Array, ws: _Workspace, rng: np.random.Generator | None = None
    ) -> Array:
        """Training forward pass: x_aug (n, d + 1) with a ones column -> logits (n, K).
        With `rng`, layers with dropout draw their masks from it."""
        if rng is None or not self.has_dropout:
            ws.dropped = False
            for layer, inp, out in zip(self.layers, [x_aug, *ws.inputs], ws.outputs, strict=True):
                layer.forward(inp, out)
            return ws.logits
        ws.dropped = True
        inputs = [x_aug, *ws.inputs]
        for i, layer in enumerate(self.layers):
            kept, mask, keep = ws.kept[i], ws.masks[i], ws.keeps[i]
            if kept is None or mask is None or keep is None:
                layer.forward(inputs[i], ws.outputs[i])
                continue
            p = self.dropout[i]
            layer.forward(inputs[i], kept)
            draw_dropout_mask(rng, p, keep, mask)
            np.multiply(kept, mask, out=ws.outputs[i])
        return ws.logits

    def backward(self, dlogits: Array, ws: _Workspace) -> None:
        """Fills `self.grad` (every layer's grads) from dL/dlogits; skips dL/dx of the input."""
        d_out = dlogits
        for i in range(len(self.layers) - 1, -1, -1):
            dx = ws.d_outputs[i - 1] if i > 0 else None
            mask = ws.masks[i] if ws.dropped else None
            if mask is not None:
                d_out *= mask  # d(dropped output) -> d(activation output)
            self.layers[i].backward(d_out, dx)
            if dx is not None:
                d_out = dx

    def logits(self, x: Array) -> Array:
        """Inference: (n, d) -> (n, K), allocating; never touches the training buffers."""
        out = np.asarray(x, dtype=self.dtype)
        for layer in self.layers:
            out = layer.infer(out)
        return out


_LEVELS = 1 << 16


def draw_dropout_mask(rng: np.random.Generator, p: float, keep: Array, mask: Array) -> None:
    """An inverted-dropout mask: each unit kept with probability 1 - p and scaled by 1 / (1 - p),
    as Keras does. 16 raw random bits per unit, compared with a threshold: far less of the
    generator's work than a float32 draw (the draw was 2/3 of a dropout layer's cost on the
    large network); the keep probability is p rounded to a multiple of 2^-16 (off by < 8e-6)."""
    threshold = min(round(p * _LEVELS), _LEVELS - 1)
    n = keep.size
    bits = rng.bit_generator.random_raw(-(-n // 4)).view(np.uint16)[:n].reshape(keep.shape)
    np.greater_equal(bits, threshold, out=keep)
    np.multiply(keep, 1.0 / (1.0 - p), out=mask)


def network_for(spec: TrainingSpec, sizes: list[int]) -> Network:
    """The network a (completed) spec describes: activations, their alphas, dropout."""
    return Network(
        sizes,
        [layer.activation for layer in spec.layers],
        spec.dtype,
        alphas=[layer.alpha for layer in spec.layers],
        dropout=[layer.dropout for layer in spec.layers],
    )


def initializers(spec: TrainingSpec) -> list[str]:
    """Per layer, the output layer's last; a completed spec names every one."""
    names = [layer.initializer for layer in spec.layers] + [spec.output_initializer]
    if any(name is None for name in names):
        raise ValueError("initializers are chosen by resolve_spec; this spec is not resolved")
    return [name for name in names if name is not None]
