"""Assembles the ONNX model: inputs, preprocessing, network, outputs, metadata."""

from __future__ import annotations

import json
import uuid

import onnx
from onnx import helper

from core.errors import NotSupported
from core.onnx_export.graph import IR_VERSION, ML_DOMAIN, ML_OPSET, OPSET, Graph
from core.onnx_export.network import logits, outputs
from core.onnx_export.preprocessing import network_inputs
from models.model import Model

INPUT = "input"  # the one input of a numeric-only model


def build_model(model: Model, *, model_id: uuid.UUID | None = None) -> onnx.ModelProto:
    pre = model.preprocessor
    output_names = ["value"] if model.label_encoder is None else ["label", "probabilities"]
    per_column = bool(pre.categorical_columns)
    if per_column:
        clash = sorted(set(pre.feature_names) & set(output_names))
        if clash:
            raise NotSupported(
                f"the feature {clash[0]!r} has the name of an ONNX output "
                f"({', '.join(output_names)}): this model cannot be exported",
                {"feature": clash[0]},
                code="onnx_unsupported",
            )
    g = Graph(reserved={INPUT, *pre.feature_names, *output_names})
    double, string = onnx.TensorProto.DOUBLE, onnx.TensorProto.STRING
    if per_column:
        inputs = [
            helper.make_tensor_value_info(name, double if kind == "numeric" else string, ["N", 1])
            for name, kind in zip(pre.feature_names, pre.feature_types, strict=True)
        ]
        numeric_names = [pre.feature_names[j] for j in pre.numeric_columns]
        numeric = g.concat(numeric_names) if numeric_names else None
        categorical = [pre.feature_names[j] for j in pre.categorical_columns]
    else:
        inputs = [helper.make_tensor_value_info(INPUT, double, ["N", len(pre.feature_names)])]
        numeric, categorical = INPUT, []
    x = network_inputs(g, pre, numeric=numeric, categorical=categorical, dtype=model.network.dtype)
    graph_outputs = outputs(g, model, logits(g, model.network, x))
    graph = helper.make_graph(
        g.nodes, "descent_model", inputs, graph_outputs, initializer=g.initializers
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(ML_DOMAIN, ML_OPSET)],
        ir_version=IR_VERSION,
        producer_name="descent",
        doc_string=f"Descent {model.task} model"
        + (f" {model_id}" if model_id is not None else "")
        + "; see core/onnx_export for the inputs and outputs",
    )
    props = {
        "descent.task": str(model.task),
        "descent.feature_names": json.dumps(pre.feature_names),
        "descent.feature_types": json.dumps([str(t) for t in pre.feature_types]),
        "descent.inputs": "per_column" if per_column else INPUT,
    }
    if model_id is not None:
        props["descent.model_id"] = str(model_id)
    if model.classes is not None:
        props["descent.classes"] = json.dumps(model.classes, default=str)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    return proto
