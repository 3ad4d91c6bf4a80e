"""The dense layers and what `Model.predict_proba` / `Model.predict` make of their logits."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from core.errors import NotSupported
from core.onnx_export.graph import Graph
from models.activations import ELU, Activation, LeakyReLU
from models.model import Model
from models.network import Network

_FLOAT64 = np.dtype(np.float64)
_PLAIN = {"linear": None, "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _activation(g: Graph, act: Activation, z: str, dtype: np.dtype[np.floating]) -> str:
    if isinstance(act, LeakyReLU):
        # max(z, alpha * z) with alpha in the network's dtype, exactly as the engine computes it.
        alpha = g.const("alpha", np.asarray(act.alpha, dtype=dtype))
        return g.op("Max", [z, g.op("Mul", [z, alpha])])
    if isinstance(act, ELU):
        # Spelled out: onnxruntime has no float64 Elu. alpha * (exp(min(z, 0)) - 1) where z <= 0,
        # the min keeping exp() from overflowing in the branch Where discards.
        zero = g.const("zero", np.zeros((), dtype=dtype))
        one = g.const("one", np.ones((), dtype=dtype))
        alpha = g.const("alpha", np.asarray(act.alpha, dtype=dtype))
        negative = g.op("Mul", [alpha, g.op("Sub", [g.op("Exp", [g.op("Min", [z, zero])]), one])])
        return g.op("Where", [g.op("LessOrEqual", [z, zero]), negative, z])
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
    if model.spec.loss == "binary_crossentropy":
        # One logit: p of the second class, computed in the network's dtype; 1 - p in float64.
        p = g.cast(g.op("Sigmoid", [z]), _FLOAT64, source=dtype)
        q = g.op("Sub", [g.const("one", np.ones((1, 1))), p])
        probabilities = g.op("Concat", [q, p], axis=1, out="probabilities")
    else:
        p = g.cast(g.op("Softmax", [z], axis=1), _FLOAT64, source=dtype)
        probabilities = g.op("Identity", [p], out="probabilities")
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
