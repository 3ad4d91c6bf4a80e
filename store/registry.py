"""The model registry's rows. SQL only; never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel


def get_registered(session: Session, *, tenant_id: uuid.UUID, name: str) -> RegisteredModel | None:
    return session.scalars(
        select(RegisteredModel).where(
            RegisteredModel.tenant_id == tenant_id, RegisteredModel.name == name
        )
    ).one_or_none()


def list_registered(session: Session, *, tenant_id: uuid.UUID, limit: int) -> list[RegisteredModel]:
    query = select(RegisteredModel).where(RegisteredModel.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(RegisteredModel.name).limit(limit)))


def versions(session: Session, *, registered_id: uuid.UUID) -> list[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.registered_model_id == registered_id)
    return list(session.scalars(query.order_by(ModelVersion.version)))


def version(session: Session, *, registered_id: uuid.UUID, number: int) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.registered_model_id == registered_id, ModelVersion.version == number
        )
    ).one_or_none()


def last_version(session: Session, *, registered_id: uuid.UUID) -> int:
    query = select(func.max(ModelVersion.version)).where(
        ModelVersion.registered_model_id == registered_id
    )
    return int(session.scalar(query) or 0)


def aliases(session: Session, *, registered_id: uuid.UUID) -> list[ModelAlias]:
    query = select(ModelAlias).where(ModelAlias.registered_model_id == registered_id)
    return list(session.scalars(query.order_by(ModelAlias.alias)))


def alias(session: Session, *, registered_id: uuid.UUID, name: str) -> ModelAlias | None:
    return session.scalars(
        select(ModelAlias).where(
            ModelAlias.registered_model_id == registered_id, ModelAlias.alias == name
        )
    ).one_or_none()


def alias_moves(session: Session, *, registered_id: uuid.UUID, name: str) -> list[AliasMove]:
    query = select(AliasMove).where(
        AliasMove.registered_model_id == registered_id, AliasMove.alias == name
    )
    return list(session.scalars(query.order_by(AliasMove.moved_at, AliasMove.id)))
