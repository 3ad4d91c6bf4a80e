"""Trained models (one immutable row per succeeded run). SQL only; never commits."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.orm import Session, undefer

from store.base import Keyset, Reads, newest_first, page_params, plain_columns
from store.tables import Model, Run

_OWNED = (Model.id == bindparam("model_id")) & (Model.tenant_id == bindparam("tenant_id"))
_VIEW = select(*plain_columns(Model)).where(_OWNED)


def insert_model(session: Session, model: Model) -> Model:
    session.add(model)
    session.flush()
    return model


def get_model(
    session: Session, *, tenant_id: uuid.UUID, model_id: uuid.UUID, with_blob: bool = False
) -> Model | None:
    query = select(Model).where(_OWNED)
    if with_blob:
        query = query.options(undefer(Model.blob))
    return session.scalars(query, {"model_id": model_id, "tenant_id": tenant_id}).one_or_none()


def model_view(reads: Reads, *, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Row[Any] | None:
    """The model's metadata as a row (no blob)."""
    return reads.execute(_VIEW, {"model_id": model_id, "tenant_id": tenant_id}).one_or_none()


def list_models(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    after: Keyset | None,
    run_id: uuid.UUID | None = None,
    dataset_id: uuid.UUID | None = None,
) -> list[Row[Any]]:
    params: dict[str, Any] = {"tenant_id": tenant_id, **page_params(after, limit)}
    if run_id is not None:
        params["run_id"] = run_id
    if dataset_id is not None:
        params["dataset_id"] = dataset_id
    query = _models_page(run_id is not None, dataset_id is not None, after is not None)
    return list(reads.execute(query, params))


@cache
def _models_page(by_run: bool, by_dataset: bool, resume: bool) -> Select[Any]:
    query = select(*plain_columns(Model)).where(Model.tenant_id == bindparam("tenant_id"))
    if by_run:
        query = query.where(Model.run_id == bindparam("run_id"))
    if by_dataset:
        query = query.join(Run, Run.id == Model.run_id)
        query = query.where(Run.dataset_id == bindparam("dataset_id"))
    return newest_first(query, Model, resume=resume)
