"""Tenants and API keys. Repository functions: SQL only, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.tables import ACTIVE_RUN_STATUSES, ApiKey, Run, Tenant


def get_tenant_by_name(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name)).one_or_none()


def get_tenant(session: Session, tenant_id: uuid.UUID) -> Tenant | None:
    return session.get(Tenant, tenant_id)


def insert_tenant(session: Session, name: str) -> Tenant:
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def insert_api_key(
    session: Session, *, tenant_id: uuid.UUID, prefix: str, key_hash: str, name: str | None
) -> ApiKey:
    key = ApiKey(tenant_id=tenant_id, prefix=prefix, key_hash=key_hash, name=name)
    session.add(key)
    session.flush()
    return key


def get_api_key_with_tenant(session: Session, prefix: str) -> tuple[ApiKey, Tenant] | None:
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.prefix == prefix)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def get_api_key(session: Session, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    ).one_or_none()


def list_api_keys(session: Session, *, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    )


def get_api_key_by_id(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def get_api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def count_live_runs(session: Session, *, tenant_id: uuid.UUID, lock: bool = False) -> int:
    """Runs of a tenant that hold (or wait for) a worker: queued, running, cancelling.
    ``lock`` takes the tenant row FOR UPDATE first (PostgreSQL), so concurrent submits of
    one tenant count one after another; SQLite's write session is serialised already."""
    if lock:
        session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    return int(
        session.scalar(
            select(func.count())
            .select_from(Run)
            .where(Run.tenant_id == tenant_id, Run.status.in_(ACTIVE_RUN_STATUSES))
        )
        or 0
    )
