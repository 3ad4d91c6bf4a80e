"""A small builder for one ONNX graph: nodes, constants and collision-free value names.

Imported only once `onnx` is known to be installed (core.onnx_export checks it first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

OPSET = 17  # ai.onnx; onnxruntime >= 1.12 runs it
ML_OPSET = 3  # ai.onnx.ml (OneHotEncoder)
IR_VERSION = 8  # the IR that introduced opset 17: older runtimes can load the file too
ML_DOMAIN = "ai.onnx.ml"

ELEM_TYPE = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
}


class Graph:
    """Collects nodes and initializers; every intermediate value gets a fresh name that avoids
    the graph's input and output names (which are the user's column names)."""

    def __init__(self, reserved: set[str]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used = set(reserved)
        self._count = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"descent_{hint}_{self._count}"
            if name not in self._used:
                self._used.add(name)
                return name

    def const(self, hint: str, value: NDArray[Any]) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        out: str | None = None,
        domain: str = "",
        **attributes: Any,
    ) -> str:
        """One node with one output (named ``out``, or a fresh name); returns that name."""
        output = out if out is not None else self.fresh(op_type.lower())
        self.nodes.append(
            helper.make_node(
                op_type,
                list(inputs),
                [output],
                name=self.fresh(f"node_{op_type.lower()}"),
                domain=domain,
                **attributes,
            )
        )
        return output

    def cast(self, value: str, dtype: np.dtype[Any], *, source: np.dtype[Any]) -> str:
        """``value`` as ``dtype``; no node when it already is."""
        if np.dtype(source) == np.dtype(dtype):
            return value
        return self.op("Cast", [value], to=ELEM_TYPE[np.dtype(dtype)])

    def concat(self, parts: list[str]) -> str:
        return parts[0] if len(parts) == 1 else self.op("Concat", parts, axis=1)
