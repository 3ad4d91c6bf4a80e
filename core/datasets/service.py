"""Dataset service functions: they own the transactions."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from core.config import Settings
from core.datasets.detect import parse_upload
from core.datasets.images import DEFAULT_COLOR_MODE, DEFAULT_IMAGE_SIZE, ImageShape
from core.datasets.parsed import ParsedDataset
from core.datasets.profile import profile_of
from core.datasets.stored import decode_npz, encode_npz, sha256_file
from core.errors import Conflict, DescentError, InvalidInput, NotFound
from core.pagination import Page, newest_page
from models import task_note
from store import datasets as dataset_store
from store import runs as run_store
from store.base import Reads
from store.session import Database
from store.tables import MAX_NAME_CHARS, Dataset, DatasetFormat


def _not_found() -> NotFound:
    # Identical for a missing id and another tenant's id: no existence oracle.
    return NotFound("dataset not found", code="dataset_not_found")


def _clean_name(name: str | None, filename: str | None) -> str:
    chosen = (name or "").strip() or Path(filename or "").name.strip() or "dataset"
    if len(chosen) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"name is longer than {MAX_NAME_CHARS} characters",
            {"field": "name", "limit": MAX_NAME_CHARS},
        )
    return chosen


def image_shape(image_size: str | None, color_mode: str | None) -> ImageShape:
    """The form fields of an image upload (defaults: 32, grayscale); 422 naming the field."""
    size = DEFAULT_IMAGE_SIZE
    if image_size is not None and image_size.strip():
        try:
            size = int(image_size.strip())
        except ValueError:
            raise InvalidInput(
                f"image_size must be a whole number, got {image_size[:40]!r}",
                {"field": "image_size"},
                code="invalid_image_size",
            ) from None
    return ImageShape(size, (color_mode or DEFAULT_COLOR_MODE).strip())


def create_dataset(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    upload_path: Path,
    filename: str | None,
    name: str | None,
    label: str | None,
    settings: Settings,
    content_type: str | None = None,
    image_size: str | None = None,
    color_mode: str | None = None,
) -> Dataset:
    """Parse, validate and store an upload. Parsing happens before the session is used, so no
    database transaction (or SQLite write lock) is held while a large file is read."""
    display_name = _clean_name(name, filename)
    if label is not None and len(label) > MAX_NAME_CHARS:
        raise InvalidInput("label is too long", {"field": "label", "limit": MAX_NAME_CHARS})
    shape = image_shape(image_size, color_mode)
    parsed = parse_upload(
        upload_path,
        filename=filename,
        content_type=content_type,
        label=label,
        settings=settings,
        image_shape=shape,
    )
    blob = encode_npz(parsed)
    facts = _facts(parsed, shape)
    del parsed  # the matrices go before the insert: it holds the blob, maybe twice
    row = Dataset(
        tenant_id=tenant_id,
        name=display_name,
        sha256=sha256_file(upload_path),
        size_bytes=upload_path.stat().st_size,
        blob=blob,
        blob_sha256=hashlib.sha256(blob).hexdigest(),
        **facts,
    )
    dataset_store.insert_dataset(session, row)
    session.commit()
    return row


def _facts(parsed: ParsedDataset, shape: ImageShape) -> dict[str, Any]:
    """What the dataset row keeps of its parsed data (what submit and validate read)."""
    return {
        "profile": profile_of(parsed),
        "format": parsed.format,
        "n_rows": parsed.n_rows,
        "n_features": parsed.n_features,
        "feature_names": parsed.feature_names,
        "feature_types": list(parsed.feature_types),
        "label": parsed.label,
        "task": parsed.task,
        "classes": parsed.classes,
        "n_inputs": parsed.n_inputs,
        "class_counts": parsed.class_counts(),
        "missing": parsed.missing_counts(),
        "task_note": task_note(parsed.y),
        "image_shape": (
            {"image_size": shape.image_size, "color_mode": shape.color_mode}
            if parsed.format is DatasetFormat.images
            else None
        ),
    }


def get_dataset(reads: Reads, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Row[Any]:
    """The dataset's metadata (a row; no blob)."""
    row = dataset_store.dataset_view(reads, tenant_id=tenant_id, dataset_id=dataset_id)
    if row is None:
        raise _not_found()
    return row


def list_datasets(
    reads: Reads, *, tenant_id: uuid.UUID, limit: int, cursor: str | None = None
) -> Page[Row[Any]]:
    return newest_page(
        lambda after, n: dataset_store.list_datasets(
            reads, tenant_id=tenant_id, limit=n, after=after
        ),
        limit=limit,
        cursor=cursor,
    )


def delete_dataset(session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    row = dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, for_update=True
    )
    if row is None:
        raise _not_found()
    active = run_store.active_run_ids_for_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id
    )
    if active:
        session.rollback()
        raise Conflict(
            f"the dataset is used by {len(active)} queued or running run(s)",
            {"runs": [str(r) for r in active]},
            code="dataset_in_use",
        )
    dataset_store.delete_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    session.commit()


def dataset_profile(db: Database, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> dict[str, Any]:
    """The profile computed at upload; a dataset uploaded before profiles existed gets its
    profile computed from its stored arrays once, then kept."""
    with db.read_session() as session:
        row = dataset_store.get_dataset(
            session, tenant_id=tenant_id, dataset_id=dataset_id, with_profile=True
        )
        if row is None:
            raise _not_found()
        profile = row.profile
    if profile is None:
        with db.read_session() as session:
            _, parsed = load_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
        profile = profile_of(parsed)
        with db.session() as session:
            dataset_store.set_profile(session, dataset_id=dataset_id, profile=profile)
            session.commit()
    return {"dataset_id": str(dataset_id), **profile}


def load_dataset(
    session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID
) -> tuple[Dataset, ParsedDataset]:
    """The stored arrays, with the blob's hash verified."""
    row = dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, with_blob=True
    )
    if row is None:
        raise _not_found()
    if hashlib.sha256(row.blob).hexdigest() != row.blob_sha256:
        raise DescentError(
            "stored dataset failed its integrity check",
            {"dataset_id": str(dataset_id)},
            code="dataset_corrupt",
        )
    return row, decode_npz(row.blob)
