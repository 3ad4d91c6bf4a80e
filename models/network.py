"""A dense network whose parameters live in one flat vector, trained in a feature-major layout.

Layer i owns a (d_in + 1, d_out) block `[W; b]` of the flat vector. In training, activations are
feature-major: layer i's input is a (d_in + 1, n) buffer whose last row is ones, so the bias
rides in the same GEMM as the weights (forward: one matmul `[W; b]^T @ x`; backward: one matmul
`x @ dz^T` gives dW and db together, in the flat vector's own layout). Feature-major keeps each
layer's output a contiguous block of its buffer (a sample-major buffer with a ones column makes
every element-wise op strided), and the loss reduces over classes along the slow axis, which
numpy does a row at a time instead of per sample. The batch's first input stays sample-major
(the data's rows); BLAS reads its transpose for free.

`forward` returns the logits as an (n, K) view and `backward` takes dL/dlogits the same way
(`ws.dlogits` is such a view), so callers see samples in rows as before. One flat vector for the
parameters and one for their gradients turn every optimizer update into a handful of
whole-vector ufunc calls. For small networks the number of numpy calls per step, not the FLOPs,
decides the speed: each step runs from lists prepared once per batch size.

Dropout (per hidden layer, training only) writes the activation's output to a buffer of its own
and the masked copy to the next layer's input; a network without dropout never touches masks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

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

    def infer(self, x: Array) -> Array:
        """Forward pass without augmentation or caching, for prediction (sample-major)."""
        z: Array = x @ self.params["W"]
        z += self.params["b"]
        self.activation.infer(z)
        return z


ForwardOp = Callable[[Array], None]
BackwardOp = Callable[[Array, Array], None]


class _Workspace:
    """Preallocated feature-major buffers for one batch size: no allocation in the training
    loop. `fwd` / `bwd` list the plain path's operands per layer once, so a step is a loop over
    tuples (a small network's step is mostly per-call overhead)."""

    def __init__(self, n: int, net: Network) -> None:
        sizes, dtype = net.sizes, net.dtype
        self.n = n
        # inputs[i] feeds layer i + 1: the previous layer's output plus a row of ones.
        self.inputs = []
        for d in sizes[1:-1]:
            buf = np.empty((d + 1, n), dtype=dtype)
            buf[-1] = 1.0
            self.inputs.append(buf)
        self.outputs = [buf[:-1] for buf in self.inputs]
        self.logits_fm = np.empty((sizes[-1], n), dtype=dtype)
        self.outputs.append(self.logits_fm)
        self.logits = self.logits_fm.T  # (n, K) views of the feature-major buffers
        self.dlogits_fm = np.empty((sizes[-1], n), dtype=dtype)
        self.dlogits = self.dlogits_fm.T
        # d_outputs[i] receives dL/d(output of layer i) from layer i + 1's backward.
        self.d_outputs = [np.empty((d, n), dtype=dtype) for d in sizes[1:-1]]
        # Per layer with dropout: its activation's output (what its backward needs) and the
        # scaled keep-mask, 0 or 1 / (1 - p); None elsewhere.
        shapes = [(d, n) if p else None for d, p in zip(sizes[1:], net.dropout, strict=True)]
        self.kept = [None if s is None else np.empty(s, dtype=dtype) for s in shapes]
        self.masks = [None if s is None else np.empty(s, dtype=dtype) for s in shapes]
        self.keeps = [None if s is None else np.empty(s, dtype=bool) for s in shapes]
        self.dropped = False  # whether the last forward applied the masks
        self.x_t: Array | None = None  # the batch's input, transposed: (d_0 + 1, n)
        layers = net.layers
        fwd_of: list[ForwardOp | None] = [
            None if isinstance(layer.activation, Linear) else layer.activation.forward
            for layer in layers
        ]
        bwd_of: list[BackwardOp | None] = [
            None if isinstance(layer.activation, Linear) else layer.activation.backward
            for layer in layers
        ]
        self.fwd_of, self.bwd_of = fwd_of, bwd_of
        # Layer 0's input is the batch itself: W^T, output, activation.
        self.first = (layers[0].W_aug.T, self.outputs[0], fwd_of[0])
        self.first_dW = layers[0].dW_aug
        # Layers 1..L-1: W^T, input, output, activation.
        self.fwd: list[tuple[Array, Array, Array, ForwardOp | None]] = [
            (layers[i].W_aug.T, self.inputs[i - 1], self.outputs[i], fwd_of[i])
            for i in range(1, len(layers))
        ]
        # Layers L-1..1: activation backward, its output, input, dW, W, dL/d(input).
        self.bwd: list[tuple[BackwardOp | None, Array, Array, Array, Array, Array]] = [
            (
                bwd_of[i],
                self.outputs[i],
                self.inputs[i - 1],
                layers[i].dW_aug,
                layers[i].params["W"],
                self.d_outputs[i - 1],
            )
            for i in range(len(layers) - 1, 0, -1)
        ]


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
            ws = self._workspaces[n] = _Workspace(n, self)
        return ws

    def forward(
        self, x_aug: Array, ws: _Workspace, rng: np.random.Generator | None = None
    ) -> Array:
        """Training forward pass: x_aug (n, d + 1) with a ones column -> logits (n, K), a view
        of the feature-major buffer. With `rng`, layers with dropout draw their masks from it."""
        x_t = ws.x_t = x_aug.T
        dot = np.dot  # for 2-D operands ~0.3 us a call cheaper than np.matmul
        if rng is None or not self.has_dropout:
            ws.dropped = False
            w_t, out, act = ws.first
            dot(w_t, x_t, out=out)
            if act is not None:
                act(out)
            for w_t, inp, out, act in ws.fwd:
                dot(w_t, inp, out=out)
                if act is not None:
                    act(out)
            return ws.logits
        ws.dropped = True
        inputs = [x_t, *ws.inputs]
        for i, layer in enumerate(self.layers):
            kept, mask, keep = ws.kept[i], ws.masks[i], ws.keeps[i]
            out = ws.outputs[i] if kept is None else kept
            dot(layer.W_aug.T, inputs[i], out=out)
            layer.activation.forward(out)
            if kept is not None and mask is not None and keep is not None:
                draw_dropout_mask(rng, self.dropout[i], keep, mask)
                np.multiply(kept, mask, out=ws.outputs[i])
        return ws.logits

    def backward(self, dlogits: Array, ws: _Workspace) -> None:
        """Fills `self.grad` (every layer's grads) from dL/dlogits (n, K), normally
        `ws.dlogits`; skips dL/dx of the input."""
        assert ws.x_t is not None, "backward before forward"
        d_out = dlogits.T
        if ws.dropped:
            self._backward_dropout(d_out, ws)
            return
        # np.dot, also for batch 1's (d, 1) x (1, m) outer products: 1.5 us for (129, 1) x
        # (1, 64), where a broadcast multiply takes 2.7 and np.matmul 8.8.
        dot = np.dot
        for act, a, x_in, dw, w, dx in ws.bwd:
            if act is not None:
                act(a, d_out)
            dot(x_in, d_out.T, out=dw)
            dot(w, d_out, out=dx)
            d_out = dx
        act0 = ws.bwd_of[0]
        if act0 is not None:
            act0(ws.outputs[0], d_out)
        dot(ws.x_t, d_out.T, out=ws.first_dW)

    def _backward_dropout(self, d_out: Array, ws: _Workspace) -> None:
        inputs = [ws.x_t, *ws.inputs]
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            mask, kept = ws.masks[i], ws.kept[i]
            if mask is not None:
                d_out *= mask  # d(dropped output) -> d(activation output)
            layer.activation.backward(ws.outputs[i] if kept is None else kept, d_out)
            x_in = inputs[i]
            assert x_in is not None
            np.dot(x_in, d_out.T, out=layer.dW_aug)
            if i > 0:
                dx = ws.d_outputs[i - 1]
                np.dot(layer.params["W"], d_out, out=dx)
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
