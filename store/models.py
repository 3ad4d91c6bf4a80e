"""Trained models (one immutable row per succeeded run). SQL only; never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from store.tables import Model


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
