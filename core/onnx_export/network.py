"""The dense layers and what `Model.predict_proba` / `Model.predict` make of their logits."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from core.errors import NotSupported
from core.onnx_export.graph import Graph
from models.activations import ELU, GELU, SELU, Activation, LeakyReLU, SiLU, Softplus
from models.model import Model
from models.network import Network

_FLOAT64 = np.dtype(np.float64)
_PLAIN = {"linear": None, "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _activation(g: Graph, act: Activation, z: str, dtype: np.dtype[np.floating]) -> str:
    """``act`` on ``z`` in the network's dtype, spelled out in basic operators where
    onnxruntime lacks a float64 kernel or computes another formula than the engine's."""

    def c(name: str, value: float) -> str:
        return g.const(name, np.asarray(value, dtype=dtype))

    if isinstance(act, LeakyReLU):
        # max(z, alpha * z) with alpha in the network's dtype, exactly as the engine computes it.
        return g.op("Max", [z, g.op("Mul", [z, c("alpha", act.alpha)])])
    if isinstance(act, ELU | SELU):
        # alpha * (exp(min(z, 0)) - 1) where z <= 0 (scaled, for selu), the min keeping exp()
        # from overflowing in the branch Where discards.
        alpha = act.alpha if isinstance(act, ELU) else SELU.ALPHA
        zero = c("zero", 0.0)
        expm1 = g.op("Sub", [g.op("Exp", [g.op("Min", [z, zero])]), c("one", 1.0)])
        out = g.op(
            "Where", [g.op("LessOrEqual", [z, zero]), g.op("Mul", [c("alpha", alpha), expm1]), z]
        )
        return out if isinstance(act, ELU) else g.op("Mul", [out, c("scale", SELU.SCALE)])
    if isinstance(act, Softplus):
        # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): no overflow for large z.
        tail = g.op(
            "Log", [g.op("Add", [c("one", 1.0), g.op("Exp", [g.op("Neg", [g.op("Abs", [z])])])])]
        )
        return g.op("Add", [g.op("Relu", [z]), tail])
    if isinstance(act, SiLU):
        return g.op("Mul", [z, g.op("Sigmoid", [z])])
    if isinstance(act, GELU):
        # 0.5 z (1 + tanh(C (z + K z^3))), the tanh approximation the engine trains with.
        inner = g.op("Add", [c("one", 1.0), g.op("Mul", [c("k", GELU.K), g.op("Mul", [z, z])])])
        t = g.op("Tanh", [g.op("Mul", [c("c", GELU.C), g.op("Mul", [z, inner])])])
        half = g.op("Mul", [c("half", 0.5), g.op("Add", [c("one", 1.0), t])])
        return g.op("Mul", [z, half])
    if act.name not in _PLAIN:
        raise NotSupported(
            f"ONNX export does not know the activation {act.name!r}", code="onnx_unsupported"
        )
    op = _PLAIN[act.name]
    return z if op is None else g.op(op, [z])


def logits(g: Graph, network: Network, x: str) -> str:
    """x @ W + b and the activation, per layer (the last layer is linear)."""
    for layer in network.layers:
        z = g.op("MatMul", [x, g.const("W", layer.params["W"])])
        z = g.op("Add", [z, g.const("b", layer.params["b"])])
        x = _activation(g, layer.activation, z, network.dtype)
    return x


def class_labels(classes: list[Any]) -> tuple[np.ndarray[Any, Any], int]:
    """The classes as a constant of their own type (bool, int64, double or string)."""
    if all(isinstance(c, bool | np.bool_) for c in classes):
        return np.asarray(classes, dtype=np.bool_), onnx.TensorProto.BOOL
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype=np.int64), onnx.TensorProto.INT64
    if all(isinstance(c, int | float | np.number) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype=np.float64), onnx.TensorProto.DOUBLE
    return np.asarray([str(c) for c in classes], dtype=object), onnx.TensorProto.STRING


def outputs(g: Graph, model: Model, z: str) -> list[onnx.ValueInfoProto]:
    """`label` (N) and `probabilities` (N, K) for a classifier, `value` for a regressor; all
    in float64 (labels in their own type), as predict answers."""
    dtype = model.network.dtype
    k = model.network.sizes[-1]
    if model.label_encoder is None:
        scaler = model.target_scaler
        assert scaler is not None
        # TargetScaler.inverse: float64(z) * scale + mean.
        z64 = g.cast(z, _FLOAT64, source=dtype)
        v = g.op("Mul", [z64, g.const("target_scale", _f64(scaler.scale))])
        v = g.op("Add", [v, g.const("target_mean", _f64(scaler.mean))])
        if k > 1:
            g.op("Identity", [v], out="value")
            return [helper.make_tensor_value_info("value", onnx.TensorProto.DOUBLE, ["N", k])]
        # predict answers (N,) for one target
        g.op("Squeeze", [v, g.const("axis", np.asarray([1], dtype=np.int64))], out="value")
        return [helper.make_tensor_value_info("value", onnx.TensorProto.DOUBLE, ["N"])]
    # Probabilities in float64 from the logits, as the engine's losses compute them: float32
    # saturates to an exact 0 or 1 near |z| = 17.
    z64 = g.cast(z, _FLOAT64, source=dtype)
    if model.spec.loss == "binary_crossentropy":
        # One logit: [sigmoid(-z), sigmoid(z)], each column from its own logit (never 1 - p).
        q, p = g.op("Sigmoid", [g.op("Neg", [z64])]), g.op("Sigmoid", [z64])
        probabilities = g.op("Concat", [q, p], axis=1, out="probabilities")
    else:
        probabilities = g.op("Softmax", [z64], axis=1, out="probabilities")
    labels, label_type = class_labels(list(model.label_encoder.classes))
    # ArgMax keeps the first of equal maxima, as numpy's argmax does.
    index = g.op("ArgMax", [probabilities], axis=1, keepdims=0)
    g.op("Gather", [g.const("classes", labels), index], axis=0, out="label")
    n_classes = len(labels)
    return [
        helper.make_tensor_value_info("label", label_type, ["N"]),
        helper.make_tensor_value_info("probabilities", onnx.TensorProto.DOUBLE, ["N", n_classes]),
    ]


def _f64(values: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(values, dtype=np.float64)
