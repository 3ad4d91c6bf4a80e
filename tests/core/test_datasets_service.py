"""core.datasets service functions against both migrated databases."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from core import datasets
from core.config import Settings
from core.errors import BadRequest, Conflict, DescentError, InvalidInput, NotFound
from store import runs as run_store
from store.session import Database
from store.tables import Dataset, Run, RunStatus, Tenant

CSV = b"a,b,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n"


def _tenant(db: Database, name: str) -> uuid.UUID:
    with db.session() as session:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.commit()
        return tenant.id


def _create(
    db: Database,
    settings: Settings,
    tenant_id: uuid.UUID,
    tmp_path: Path,
    name: str = "d",
    content: bytes = CSV,
) -> Dataset:
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_bytes(content)
    with db.session() as session:
        return datasets.create_dataset(
            session,
            tenant_id=tenant_id,
            upload_path=path,
            filename="upload.csv",
            name=name,
            label=None,
            settings=settings,
        )


def test_create_get_load(db: Database, settings: Settings, tmp_path: Path) -> None:
    tenant = _tenant(db, "a")
    row = _create(db, settings, tenant, tmp_path, name="iris-ish")
    assert row.sha256 == hashlib.sha256(CSV).hexdigest() and row.size_bytes == len(CSV)
    assert (row.n_rows, row.n_features, row.classes) == (4, 2, ["x", "z"])
    with db.read_session() as session:
        got = datasets.get_dataset(session, tenant_id=tenant, dataset_id=row.id)
        assert got.name == "iris-ish" and got.created_at.tzinfo is not None
        stored, parsed = datasets.load_dataset(session, tenant_id=tenant, dataset_id=row.id)
    assert stored.id == row.id
    assert np.array_equal(parsed.X_numeric, [[1, 2], [3, 4], [5, 6], [7, 8]])


def test_default_name_and_invalid_input_stores_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    tenant = _tenant(db, "a")
    path = tmp_path / "u.csv"
    path.write_bytes(b"a,y\n1,0\n2,\n")
    with db.session() as session:
        with pytest.raises(InvalidInput):
            datasets.create_dataset(
                session,
                tenant_id=tenant,
                upload_path=path,
                filename="my data.csv",
                name=None,
                label=None,
                settings=settings,
            )
        page = datasets.list_datasets(session, tenant_id=tenant, limit=10)
        assert page.items == []
    path.write_bytes(CSV)
    with db.session() as session:
        row = datasets.create_dataset(
            session,
            tenant_id=tenant,
            upload_path=path,
            filename="my data.csv",
            name=None,
            label=None,
            settings=settings,
        )
    assert row.name == "my data.csv"


def test_list_is_newest_first_with_cursor(db: Database, settings: Settings, tmp_path: Path) -> None:
    tenant = _tenant(db, "a")
    created = [_create(db, settings, tenant, tmp_path, name=f"d{i}").id for i in range(5)]
    _create(db, settings, _tenant(db, "b"), tmp_path, name="not-mine")
    seen: list[uuid.UUID] = []
    cursor = None
    with db.read_session() as session:
        while True:
            page = datasets.list_datasets(session, tenant_id=tenant, limit=2, cursor=cursor)
            seen += [r.id for r in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == list(reversed(created))


def test_cursor_ties_on_created_at_are_broken_by_id(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    tenant = _tenant(db, "a")
    ids = [_create(db, settings, tenant, tmp_path).id for _ in range(3)]
    with db.session() as session:
        stamp = session.get(Dataset, ids[0]).created_at  # type: ignore[union-attr]
        session.execute(update(Dataset).values(created_at=stamp))
        session.commit()
    with db.read_session() as session:
        first = datasets.list_datasets(session, tenant_id=tenant, limit=2)
        rest = datasets.list_datasets(session, tenant_id=tenant, limit=2, cursor=first.next_cursor)
    listed = [r.id for r in first.items + rest.items]
    assert sorted(listed) == sorted(ids) and len(set(listed)) == 3


def test_bad_cursor_and_limit(db: Database) -> None:
    tenant = _tenant(db, "a")
    with db.read_session() as session:
        for cursor in ("garbage", "Zm9vfGJhcg"):
            with pytest.raises(BadRequest) as caught:
                datasets.list_datasets(session, tenant_id=tenant, limit=2, cursor=cursor)
            assert caught.value.details["field"] == "cursor"
            assert caught.value.code == "invalid_cursor"
        with pytest.raises(InvalidInput):
            datasets.list_datasets(session, tenant_id=tenant, limit=0)


def test_other_tenant_sees_not_found(db: Database, settings: Settings, tmp_path: Path) -> None:
    owner, intruder = _tenant(db, "a"), _tenant(db, "b")
    row = _create(db, settings, owner, tmp_path)
    errors: list[DescentError] = []
    with db.session() as session:
        for dataset_id in (row.id, uuid.uuid4()):
            for call in (datasets.get_dataset, datasets.delete_dataset, datasets.load_dataset):
                with pytest.raises(NotFound) as caught:
                    call(session, tenant_id=intruder, dataset_id=dataset_id)
                errors.append(caught.value)
    assert len({(e.code, e.message, str(e.details)) for e in errors}) == 1
    with db.read_session() as session:
        assert datasets.get_dataset(session, tenant_id=owner, dataset_id=row.id).id == row.id


@pytest.mark.parametrize("status", [RunStatus.queued, RunStatus.running, RunStatus.cancelling])
def test_delete_refused_while_a_live_run_uses_it(
    db: Database, settings: Settings, tmp_path: Path, status: RunStatus
) -> None:
    tenant = _tenant(db, "a")
    row = _create(db, settings, tenant, tmp_path)
    with db.session() as session:
        run = run_store.insert_run(
            session, Run(tenant_id=tenant, dataset_id=row.id, spec={}, status=status)
        )
        session.commit()
        with pytest.raises(Conflict) as caught:
            datasets.delete_dataset(session, tenant_id=tenant, dataset_id=row.id)
        assert caught.value.details["runs"] == [str(run.id)]
        run.status = RunStatus.succeeded
        session.commit()
        datasets.delete_dataset(session, tenant_id=tenant, dataset_id=row.id)
    with db.read_session() as session:
        with pytest.raises(NotFound):
            datasets.get_dataset(session, tenant_id=tenant, dataset_id=row.id)
        finished = run_store.get_run(session, tenant_id=tenant, run_id=run.id)
        assert finished is not None and finished.dataset_id is None


def test_corrupt_blob_is_detected(db: Database, settings: Settings, tmp_path: Path) -> None:
    tenant = _tenant(db, "a")
    row = _create(db, settings, tenant, tmp_path)
    with db.session() as session:
        session.execute(update(Dataset).where(Dataset.id == row.id).values(blob=b"tampered"))
        session.commit()
        with pytest.raises(DescentError) as caught:
            datasets.load_dataset(session, tenant_id=tenant, dataset_id=row.id)
    assert caught.value.code == "dataset_corrupt"
