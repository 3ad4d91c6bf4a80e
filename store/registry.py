"""The model registry's rows. SQL only; never commits."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session

from store.base import Reads
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


def target(
    reads: Reads, *, tenant_id: uuid.UUID, name: str, alias: str | None, version: int | None
) -> Row[Any] | None:
    """What a predict by alias (or version number) resolves to, in one round trip: the
    registered model's ``name``, the alias's ``alias_version`` (None: no such alias) and the
    version's ``version`` and ``model_id`` (None: no such version). None: no such name."""
    params: dict[str, Any] = {"tenant_id": tenant_id, "name": name}
    if alias is not None:
        params["alias"] = alias
    else:
        params["version"] = version
    return reads.execute(_target(alias is not None), params).one_or_none()


@cache
def _target(by_alias: bool) -> Select[Any]:
    """Built once per form: a registered model, outer-joined to the alias (if by alias) and to
    the version it or the number names."""
    registered, aliased, versioned = (
        RegisteredModel.__table__, ModelAlias.__table__, ModelVersion.__table__
    )  # fmt: skip
    source: Any = registered
    if by_alias:
        wanted: Any = aliased.c.version
        source = registered.outerjoin(
            aliased,
            and_(
                aliased.c.registered_model_id == registered.c.id,
                aliased.c.alias == bindparam("alias"),
            ),
        )
    else:
        wanted = bindparam("version", type_=versioned.c.version.type)
    source = source.outerjoin(
        versioned,
        and_(versioned.c.registered_model_id == registered.c.id, versioned.c.version == wanted),
    )
    return (
        select(
            registered.c.name,
            wanted.label("alias_version"),
            versioned.c.version,
            versioned.c.model_id,
        )
        .select_from(source)
        .where(
            registered.c.tenant_id == bindparam("tenant_id"), registered.c.name == bindparam("name")
        )
    )
