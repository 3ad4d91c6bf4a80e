"""A trained model as an ONNX file (`GET /v1/models/{id}/onnx`), preprocessing included.

Run it with onnxruntime; its outputs equal `Model.predict_proba` / `Model.predict` within 1e-5
(to the network's precision, see below).
Opset 17 (`ai.onnx`) plus `ai.onnx.ml` 3 (OneHotEncoder), IR version 8.

Inputs (N rows; every numeric input is float64, `tensor(double)`, NaN marking a missing value):

- A model with numeric features only (image models included: their pixels, in [0, 1], in the
  model's feature order) takes one input, ``input``, shape (N, n_features), columns in
  `feature_names` order.
- A model with categorical features takes one input per column, named after it, shape (N, 1):
  float64 for a numeric column, string for a categorical one (as skl2onnx does for mixed
  tables). A categorical value is the string Descent stored it as (``str(value)``); "" is a
  missing value (a string tensor has no null; predict's JSON says null, and takes "" for an
  unseen category); a category not seen in training is all zeros.

float64, not float32, because Descent itself imputes and standardizes in float64 before casting
to the network's dtype: the graph repeats those operations bit for bit, so a feature with a large
offset (a year, a price) loses nothing before standardization.

Outputs, float64 as predict answers:

- classification: ``label`` (N) in the classes' own type (string, int64, double or bool) and
  ``probabilities`` (N, n_classes), columns in `classes` order (a binary model has two columns).
- regression: ``value``, shape (N) for one target, (N, n_targets) for several, in the label's
  units (the target scaling undone).

Agreement is to the network's precision: ~1e-7 for probabilities, and for a regression value
~1e-7 times the target's standard deviation with a float32 network (whose own rounding the
target scale multiplies: 1e-5 in the label's units holds while that std is below ~20; a float64
network agrees to ~1e-13).

Unlike predict, the graph cannot refuse a value: infinity goes through, and a NaN in a model
trained with ``impute: "none"`` comes out as NaN rather than a 422. Model metadata
(``descent.task``, ``descent.feature_names``, ``descent.classes`` ...) describe the model.

`onnx` is an optional extra (``pip install 'descent[onnx]'``), imported only here, on use.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from core import predictions
from core.errors import NotSupported
from models import Model


def to_onnx(model: Model, *, model_id: uuid.UUID | None = None) -> bytes:
    """The serialized ONNX model; 501 if the `onnx` extra is not installed."""
    try:
        import onnx  # noqa: F401  # only: is the optional extra installed?
    except ImportError:
        raise NotSupported(
            "ONNX export needs the optional 'onnx' extra on the server: "
            "pip install 'descent[onnx]'",
            code="onnx_unavailable",
        ) from None
    from core.onnx_export.build import build_model

    data: bytes = build_model(model, model_id=model_id).SerializeToString()
    return data


def export_model(session: Session, *, tenant_id: uuid.UUID, model_id: uuid.UUID) -> bytes:
    """A tenant's ready model as ONNX: 404 if not theirs, 409 if not ready."""
    row = predictions.get_weights(session, tenant_id=tenant_id, model_id=model_id)
    return to_onnx(predictions.load_stored(row.blob, model_id), model_id=model_id)
