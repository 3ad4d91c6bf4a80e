"""Database behaviour the service relies on: SQLite pragmas and BEGIN IMMEDIATE, constraints,
cascades, UTC timestamps and the checkpoint retention rule."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from core.migrate import upgrade_to_head
from models.vocabulary import Task
from store import runs as run_store
from store.session import SQLITE_BUSY_TIMEOUT_MS, Database, make_engine_for_url
from store.tables import Checkpoint, Dataset, DatasetFormat, Run, RunEpoch, RunStatus, Tenant


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    upgrade_to_head(url)
    db = Database(make_engine_for_url(url))
    yield db, tmp_path / "p.sqlite3"
    db.dispose()


def test_sqlite_pragmas(sqlite_db: Any) -> None:
    db, _ = sqlite_db
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_write_sessions_begin_immediate(sqlite_db: Any) -> None:
    db, _ = sqlite_db
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
            session.commit()
        with db.read_session() as session:
            session.execute(text("SELECT 1"))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements == ["BEGIN IMMEDIATE", "SELECT 1", "BEGIN DEFERRED", "SELECT 1"]


def test_sqlite_write_session_holds_the_write_lock_from_its_first_read(sqlite_db: Any) -> None:
    """The point of BEGIN IMMEDIATE: a read-then-write transaction owns the lock from the start,
    so a competing writer waits (busy timeout) instead of failing at once mid-transaction."""
    db, path = sqlite_db
    with db.session() as session:
        session.execute(text("SELECT count(*) FROM tenants")).scalar()
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # Readers are not blocked (WAL).
            assert other.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
        finally:
            other.close()
        session.rollback()
    with db.read_session() as session:
        session.execute(text("SELECT count(*) FROM tenants")).scalar()
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # a read session takes no write lock
            other.execute("ROLLBACK")
        finally:
            other.close()


def _tenant(db: Database) -> uuid.UUID:
    with db.session() as session:
        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
        return tenant.id


def _dataset(db: Database, tenant_id: uuid.UUID) -> uuid.UUID:
    with db.session() as session:
        row = Dataset(
            tenant_id=tenant_id,
            name="d",
            format=DatasetFormat.csv,
            n_rows=2,
            n_features=1,
            n_inputs=1,
            feature_names=["a"],
            feature_types=["numeric"],
            label="y",
            task=Task.regression,
            classes=None,
            sha256="0" * 64,
            size_bytes=1,
            blob=b"x",
            blob_sha256="0" * 64,
        )
        session.add(row)
        session.commit()
        return row.id


def _run(db: Database, tenant_id: uuid.UUID, dataset_id: uuid.UUID | None, **kw: Any) -> uuid.UUID:
    with db.session() as session:
        run = run_store.insert_run(
            session, Run(tenant_id=tenant_id, dataset_id=dataset_id, spec={"epochs": 1}, **kw)
        )
        session.commit()
        return run.id


def test_run_status_check_constraint(db: Database) -> None:
    tenant_id = _tenant(db)
    run_id = _run(db, tenant_id, None)
    with db.session() as session, pytest.raises(IntegrityError):
        session.execute(
            text("UPDATE runs SET status = 'bogus' WHERE id = :id"),
            {"id": run_id.hex if db.engine.dialect.name == "sqlite" else run_id},
        )
        session.commit()


def test_run_epoch_is_unique_per_run(db: Database) -> None:
    tenant_id = _tenant(db)
    run_id = _run(db, tenant_id, None)
    metrics = {"train_loss": 1.0, "learning_rate": 0.1, "seconds": 0.5}
    with db.session() as session:
        run_store.insert_epoch(
            session, RunEpoch(tenant_id=tenant_id, run_id=run_id, epoch=1, **metrics)
        )
        session.commit()
        with pytest.raises(IntegrityError):
            run_store.insert_epoch(
                session, RunEpoch(tenant_id=tenant_id, run_id=run_id, epoch=1, **metrics)
            )
        session.rollback()
        assert [
            e.epoch for e in run_store.list_epochs(session, tenant_id=tenant_id, run_id=run_id)
        ] == [1]


def test_idempotency_key_unique_per_tenant(db: Database) -> None:
    a, b = _tenant(db), _tenant(db)
    _run(db, a, None, idempotency_key="k1")
    _run(db, b, None, idempotency_key="k1")  # another tenant may reuse it
    _run(db, a, None)  # NULL keys never collide
    _run(db, a, None)
    with pytest.raises(IntegrityError):
        _run(db, a, None, idempotency_key="k1")


def test_checkpoints_keep_latest_and_previous(db: Database) -> None:
    tenant_id = _tenant(db)
    run_id = _run(db, tenant_id, None)
    with db.session() as session:
        for epoch in range(1, 5):
            run_store.insert_checkpoint(
                session,
                Checkpoint(
                    tenant_id=tenant_id,
                    run_id=run_id,
                    epoch=epoch,
                    blob=bytes([epoch]),
                    sha256="0" * 64,
                    size_bytes=1,
                ),
            )
        session.commit()
        kept = run_store.list_checkpoints(session, run_id=run_id)
    assert [(c.epoch, c.blob) for c in kept] == [(4, b"\x04"), (3, b"\x03")]


def test_deleting_a_dataset_keeps_its_runs(db: Database) -> None:
    tenant_id = _tenant(db)
    dataset_id = _dataset(db, tenant_id)
    run_id = _run(db, tenant_id, dataset_id, status=RunStatus.succeeded)
    with db.session() as session:
        session.delete(session.get(Dataset, dataset_id))
        session.commit()
    with db.read_session() as session:
        run = run_store.get_run(session, tenant_id=tenant_id, run_id=run_id)
        assert run is not None and run.dataset_id is None


def test_timestamps_are_utc_aware(db: Database) -> None:
    tenant_id = _tenant(db)
    local = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    run_id = _run(db, tenant_id, None, started_at=local)
    with db.read_session() as session:
        run = run_store.get_run(session, tenant_id=tenant_id, run_id=run_id)
        assert run is not None and run.started_at is not None
        assert run.started_at.tzinfo is not None
        assert run.started_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert run.created_at.utcoffset() == timedelta(0)
