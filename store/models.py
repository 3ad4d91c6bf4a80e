"""Trained models (one immutable row per succeeded run). SQL only; never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from store.base import Keyset, newest_first
from store.tables import Model, Run


def insert_model(session: Session, model: Model) -> Model:
    session.add(model)
    session.flush()
    return model


def get_model(
    session: Session, *, tenant_id: uuid.UUID, model_id: uuid.UUID, with_blob: bool = False
) -> Model | None:
    query = select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id)
    if with_blob:
        query = query.options(undefer(Model.blob))
    return session.scalars(query).one_or_none()


def list_models(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    after: Keyset | None,
    run_id: uuid.UUID | None = None,
    dataset_id: uuid.UUID | None = None,
) -> list[Model]:
    query = select(Model).where(Model.tenant_id == tenant_id)
    if run_id is not None:
        query = query.where(Model.run_id == run_id)
    if dataset_id is not None:
        query = query.join(Run, Run.id == Model.run_id).where(Run.dataset_id == dataset_id)
    return list(session.scalars(newest_first(query, Model, after, limit)))
