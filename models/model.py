"""A trained model: network weights plus the preprocessing that feeds them.

Probabilities are computed in float64 from the logits, whatever the network's dtype: a float32
sigmoid is exactly 1.0 from a logit of about 17 on.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from models.errors import ArtifactError, InputError
from models.losses import Loss, make_loss
from models.network import Network, network_for
from models.preprocess import Preprocessor, as_rows
from models.resolve import complete_spec
from models.spec import TrainingSpec
from models.state import load_npz
from models.targets import LabelEncoder, TargetScaler
from models.types import Array
from models.vocabulary import FeatureType, Task


@dataclass
class Model:
    spec: TrainingSpec  # resolved
    network: Network
    preprocessor: Preprocessor
    label_encoder: LabelEncoder | None = None
    target_scaler: TargetScaler | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # Epochs trained in all, a warm start's parents included (history epochs count on from it).
    epochs_trained: int = 0

    @property
    def task(self) -> Task:
        return Task.classification if self.label_encoder is not None else Task.regression

    @property
    def classes(self) -> list[Any] | None:
        return None if self.label_encoder is None else list(self.label_encoder.classes)

    @property
    def feature_names(self) -> list[str]:
        return self.preprocessor.feature_names

    @property
    def feature_types(self) -> list[str]:
        return list(self.preprocessor.feature_types)

    @cached_property
    def numeric_only(self) -> bool:
        """Every feature is numeric (no categories to look up)."""
        return all(t == FeatureType.numeric for t in self.preprocessor.feature_types)

    @property
    def n_features(self) -> int:
        return len(self.preprocessor.feature_names)

    def _logits(self, X: Any) -> Array:
        rows = as_rows(X, InputError, columns=self.preprocessor.feature_names)
        if rows.shape[0] == 0:
            raise InputError("no rows to predict")
        inputs = self.preprocessor.transform(rows, dtype=self.network.dtype)
        return self.network.logits(inputs)

    def predict_proba(self, X: Any) -> Array:
        """(n, K) class probabilities, columns in `classes` order (float64)."""
        if self.label_encoder is None:
            raise InputError("a regression model has no class probabilities; use predict")
        return self._loss.outputs(self._logits(X))

    @cached_property
    def _loss(self) -> Loss:
        assert self.spec.loss is not None
        return make_loss(self.spec.loss)

    def predict(self, X: Any) -> Array:
        """Class labels (as given in training), or regression values in the label's units."""
        if self.label_encoder is not None:
            classes: Array = np.asarray(self.label_encoder.classes)
            return classes[self.predict_proba(X).argmax(axis=1)]  # type: ignore[no-any-return]
        assert self.target_scaler is not None
        values = self.target_scaler.inverse(self._logits(X))
        return values[:, 0] if values.shape[1] == 1 else values

    def to_bytes(self) -> bytes:
        """A self-contained `.npz`: every array, plus spec and preprocessing as JSON."""
        arrays: dict[str, Array] = {}
        for i, layer in enumerate(self.network.layers):
            arrays[f"layer{i}.W"] = layer.params["W"]
            arrays[f"layer{i}.b"] = layer.params["b"]
        arrays["preprocessing.mean"] = self.preprocessor.mean
        arrays["preprocessing.scale"] = self.preprocessor.scale
        arrays["preprocessing.fill"] = self.preprocessor.fill
        if self.target_scaler is not None:
            arrays["target.mean"] = self.target_scaler.mean
            arrays["target.scale"] = self.target_scaler.scale
        meta = {
            "format": MODEL_FORMAT,
            "task": self.task,
            "classes": self.classes,
            "layer_sizes": self.network.sizes,
            "activations": [layer.activation for layer in self.spec.layers],
            "preprocessing": self.preprocessor.to_json(),
            "spec": self.spec.model_dump(mode="json"),
            "metrics": self.metrics,
            "epochs_trained": self.epochs_trained,
        }
        buf = io.BytesIO()
        arrays["model.json"] = np.array(json.dumps(meta))
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
        return buf.getvalue()


MODEL_FORMAT = "descent.model/1"


def load_model(data: bytes) -> Model:
    """Rebuild a `Model` from `Model.to_bytes()`; checks every shape, never unpickles."""
    arrays = load_npz(data, what="model")
    try:
        meta = json.loads(str(arrays["model.json"]))
        if meta.get("format") != MODEL_FORMAT:
            raise ArtifactError(f"not a Descent model (format {meta.get('format')!r})")
        # Completed: a model saved before a default existed gets the one it was trained with.
        spec = complete_spec(TrainingSpec.model_validate(meta["spec"]))
        sizes = [int(s) for s in meta["layer_sizes"]]
        if list(meta["activations"]) != [layer.activation for layer in spec.layers]:
            raise ArtifactError("the activations do not match the spec's layers")
        network = network_for(spec, sizes)
        for i, layer in enumerate(network.layers):
            for key in ("W", "b"):
                arr = arrays[f"layer{i}.{key}"]
                if arr.shape != layer.params[key].shape:
                    raise ArtifactError(
                        f"layer{i}.{key} has shape {arr.shape}, expected {layer.params[key].shape}"
                    )
                layer.params[key][...] = arr
        pre_meta = meta["preprocessing"]
        preprocessor = Preprocessor.from_json(
            {
                **pre_meta,
                "mean": arrays["preprocessing.mean"],
                "scale": arrays["preprocessing.scale"],
                "fill": arrays.get("preprocessing.fill"),
            }
        )
        if preprocessor.fill.shape != preprocessor.mean.shape:
            raise ArtifactError("preprocessing.fill does not match the numeric features")
        if preprocessor.n_inputs != sizes[0]:
            raise ArtifactError("preprocessing does not match the first layer")
        classes = meta["classes"]
        target = None
        if classes is None:
            target = TargetScaler(arrays["target.mean"], arrays["target.scale"])
        return Model(
            spec=spec,
            network=network,
            preprocessor=preprocessor,
            label_encoder=None if classes is None else LabelEncoder(list(classes)),
            target_scaler=target,
            metrics=dict(meta.get("metrics") or {}),
            epochs_trained=int(meta.get("epochs_trained", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"model artifact is incomplete or inconsistent: {exc}") from None
