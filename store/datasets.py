"""Datasets. Every query is scoped by tenant; repository functions never commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, undefer

from store.base import Keyset, newest_first
from store.tables import Dataset


def insert_dataset(session: Session, dataset: Dataset) -> Dataset:
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    dataset_id: uuid.UUID,
    for_update: bool = False,
    with_blob: bool = False,
    with_profile: bool = False,
) -> Dataset | None:
    query = select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    if with_blob:
        query = query.options(undefer(Dataset.blob))
    if with_profile:
        query = query.options(undefer(Dataset.profile))
    if for_update:
        # PostgreSQL: serialise with run submission (which locks the dataset FOR SHARE).
        # SQLite ignores it; its write transactions are already serial (BEGIN IMMEDIATE).
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def list_datasets(
    session: Session, *, tenant_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[Dataset]:
    """Newest first; ``after`` is the (created_at, id) of the last row of the previous page."""
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    return list(session.scalars(newest_first(query, Dataset, after, limit)))


def delete_dataset(session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> int:
    result = session.execute(
        delete(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_profile(session: Session, *, dataset_id: uuid.UUID, profile: dict[str, Any]) -> None:
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(profile=profile))
