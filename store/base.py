"""Declarative base. Constraint names are deterministic so migrations (and SQLite batch mode,
which recreates tables) can address them by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import DateTime, Dialect, MetaData, Select, and_, or_
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# (created_at, id) of the last row of a page: the position a newest-first keyset list resumes at.
Keyset = tuple[datetime, uuid.UUID]
T = TypeVar("T")


def newest_first(query: Select[T], entity: Any, after: Keyset | None, limit: int) -> Select[T]:
    """A page of ``entity`` rows newest first, resuming after the keyset ``after``."""
    if after is not None:
        created_at, last_id = after
        query = query.where(
            or_(
                entity.created_at < created_at,
                and_(entity.created_at == created_at, entity.id < last_id),
            )
        )
    return query.order_by(entity.created_at.desc(), entity.id.desc()).limit(limit)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are normalised to UTC
    before binding (keeping the stored text sortable) and marked UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}
