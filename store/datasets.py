"""Datasets. Every query is scoped by tenant; repository functions never commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.orm import Session, undefer

from store.base import Keyset, Reads, newest_first, page_params, plain_columns
from store.tables import Dataset

_OWNED = (Dataset.id == bindparam("dataset_id")) & (Dataset.tenant_id == bindparam("tenant_id"))
_VIEW = select(*plain_columns(Dataset)).where(_OWNED)
_PAGE = select(*plain_columns(Dataset)).where(Dataset.tenant_id == bindparam("tenant_id"))
_PAGES = {resume: newest_first(_PAGE, Dataset, resume=resume) for resume in (False, True)}


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
    query = select(Dataset).where(_OWNED)
    if with_blob:
        query = query.options(undefer(Dataset.blob))
    if with_profile:
        query = query.options(undefer(Dataset.profile))
    if for_update:
        # PostgreSQL: serialise with run submission (which locks the dataset FOR SHARE).
        # SQLite ignores it; its write transactions are already serial (BEGIN IMMEDIATE).
        query = query.with_for_update()
    return session.scalars(query, _owner(tenant_id, dataset_id)).one_or_none()


def _owner(tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "dataset_id": dataset_id}


def dataset_view(reads: Reads, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Row[Any] | None:
    """The dataset's metadata as a row (no blob, no profile)."""
    return reads.execute(_VIEW, _owner(tenant_id, dataset_id)).one_or_none()


def list_datasets(
    reads: Reads, *, tenant_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[Row[Any]]:
    """Newest first; ``after`` is the (created_at, id) of the last row of the previous page."""
    params = {"tenant_id": tenant_id, **page_params(after, limit)}
    return list(reads.execute(_PAGES[after is not None], params))


def delete_dataset(session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> int:
    result = session.execute(delete(Dataset).where(_OWNED), _owner(tenant_id, dataset_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_profile(session: Session, *, dataset_id: uuid.UUID, profile: dict[str, Any]) -> None:
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(profile=profile))
