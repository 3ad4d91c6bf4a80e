"""Models and predictions.

Loaded models live in a small LRU cache per API process, keyed by model id and remembering the
owning tenant: models are immutable, so a hit needs no database read at all, and a hit for
another tenant is answered exactly like a missing model. Predict bodies are parsed with orjson
straight into numpy (core.predict_body).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy import Row
from sqlalchemy.orm import Session

from core.config import Settings
from core.datasets.images import ImageShape, decode_images
from core.errors import Conflict, DescentError, InvalidInput, NotFound
from core.pagination import Page, newest_page
from models import ArtifactError, InputError, load_model
from models import Model as LoadedModel
from store import models as model_store
from store import runs as run_store
from store.base import Reads
from store.tables import Model, RunStatus


def _not_found() -> NotFound:
    return NotFound("model not found", code="model_not_found")


def get_model(reads: Reads, *, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Row[Any]:
    """The model's metadata (a row; no weights)."""
    row = model_store.model_view(reads, tenant_id=tenant_id, model_id=model_id)
    if row is None:
        raise _not_found()
    return row


def list_models(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    cursor: str | None = None,
    run_id: uuid.UUID | None = None,
    dataset_id: uuid.UUID | None = None,
) -> Page[Row[Any]]:
    """The tenant's models, newest first."""
    return newest_page(
        lambda after, n: model_store.list_models(
            reads, tenant_id=tenant_id, limit=n, after=after, run_id=run_id,
            dataset_id=dataset_id,
        ),
        limit=limit,
        cursor=cursor,
    )  # fmt: skip


def get_weights(session: Session, *, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Model:
    row = model_store.get_model(session, tenant_id=tenant_id, model_id=model_id, with_blob=True)
    if row is None:
        raise _not_found()
    _check_ready(session, row)
    return row


def image_inputs(
    session_factory: Any,
    *,
    tenant_id: uuid.UUID,
    model_id: uuid.UUID,
    files: list[tuple[str, bytes]],
    settings: Settings,
) -> NDArray[np.float64]:
    """Pictures sent to an image model, decoded as its dataset's were (size, colour mode)."""
    with session_factory() as session:
        image = get_model(session, tenant_id=tenant_id, model_id=model_id).input.get("image")
    if not image:
        raise InvalidInput(
            "this model was not trained on images: send JSON rows (inputs, records, ...)",
            {"field": "file"},
            code="invalid_input",
        )
    shape = ImageShape(int(image["image_size"]), str(image["color_mode"]))
    return decode_images(files, shape=shape, settings=settings)


def _check_ready(session: Session, row: Model) -> None:
    run = run_store.get_run(session, tenant_id=row.tenant_id, run_id=row.run_id)
    if run is None or run.status != RunStatus.succeeded:
        raise Conflict("the model is not ready", {"model_id": str(row.id)}, code="model_not_ready")
    if hashlib.sha256(row.blob).hexdigest() != row.weights_sha256:
        raise DescentError(
            "stored model failed its integrity check",
            {"model_id": str(row.id)},
            code="model_corrupt",
        )


@dataclass(frozen=True)
class CachedModel:
    tenant_id: uuid.UUID
    model: LoadedModel


class ModelCache:
    """A thread-safe LRU of loaded models (size 0 disables caching)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[uuid.UUID, CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, model_id: uuid.UUID) -> CachedModel | None:
        with self._lock:
            item = self._items.get(model_id)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(model_id)
            self.hits += 1
            return item

    def put(self, model_id: uuid.UUID, item: CachedModel) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[model_id] = item
            self._items.move_to_end(model_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def load_for_predict(
    session_factory: Any, cache: ModelCache, *, tenant_id: uuid.UUID, model_id: uuid.UUID
) -> LoadedModel:
    """The loaded model, from the cache or (once) from the database.

    ``session_factory`` is a zero-argument context manager yielding a read session; it is only
    entered on a cache miss.
    """
    cached = cache.get(model_id)
    if cached is not None:
        if cached.tenant_id != tenant_id:
            raise _not_found()
        return cached.model
    with session_factory() as session:
        row = get_weights(session, tenant_id=tenant_id, model_id=model_id)
        blob = row.blob
    model = load_stored(blob, model_id)
    cache.put(model_id, CachedModel(tenant_id=tenant_id, model=model))
    return model


def load_stored(blob: bytes, model_id: uuid.UUID) -> LoadedModel:
    """A stored model's artifact, loaded; one that cannot be is a corrupt model (500)."""
    try:
        return load_model(blob)
    except ArtifactError as exc:
        raise DescentError(
            f"stored model cannot be loaded: {exc}",
            {"model_id": str(model_id)},
            code="model_corrupt",
        ) from None


@dataclass(frozen=True)
class Prediction:
    # Arrays, not lists: orjson writes numpy arrays itself, without a Python float per value.
    predictions: NDArray[Any] | list[Any]
    probabilities: NDArray[np.float64] | None
    classes: list[Any] | None


def predict(model: LoadedModel, X: NDArray[Any]) -> Prediction:
    try:
        classes = model.classes  # plain values: the label encoder keeps them so
        if classes is not None:
            proba = model.predict_proba(X)
            if not proba.flags.c_contiguous:  # orjson writes C-ordered arrays only
                proba = np.ascontiguousarray(proba)
            labels = [classes[i] for i in proba.argmax(axis=1).tolist()]
            return Prediction(predictions=labels, probabilities=proba, classes=classes)
        values = np.ascontiguousarray(model.predict(X), dtype=np.float64)
        return Prediction(predictions=values, probabilities=None, classes=None)
    except InputError as exc:
        raise InvalidInput(exc.message, dict(exc.details), code="invalid_input") from None


def predict_json(
    model_id: uuid.UUID, prediction: Prediction, extra: dict[str, Any] | None = None
) -> bytes:
    return orjson.dumps(
        {
            "model_id": str(model_id),
            "predictions": prediction.predictions,
            "probabilities": prediction.probabilities,
            "classes": prediction.classes,
            **(extra or {}),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
