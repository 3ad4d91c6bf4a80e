"""core.housekeeping on both backends: checkpoints of finished runs are purged (a failed run's
after the retention period, with an injected ``now``), stale temporary uploads are swept, and
every reconciler pass does both."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core import housekeeping, runs
from core.auth import authenticate, create_api_key
from core.config import Settings
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import Checkpoint, Run, RunStatus
from tests.api.runs_fixtures import Sent

RETENTION = 3600.0


@pytest.fixture
def hk_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"failed_checkpoint_retention_seconds": RETENTION, "stale_upload_seconds": 600.0}
    )


@pytest.fixture
def tenant(db: Database) -> uuid.UUID:
    with db.session() as session:
        key = create_api_key(session, "housekeeping")
    with db.read_session() as session:
        return authenticate(session, key).tenant_id


def _run_with_checkpoints(
    db: Database, tenant: uuid.UUID, status: RunStatus, finished_at: datetime | None
) -> uuid.UUID:
    run = Run(tenant_id=tenant, spec={}, status=status, finished_at=finished_at)
    with db.session() as session:
        run_store.insert_run(session, run)
        for epoch in (1, 2):
            blob = f"{run.id} {epoch}".encode()
            session.add(
                Checkpoint(
                    tenant_id=tenant,
                    run_id=run.id,
                    epoch=epoch,
                    blob=blob,
                    sha256=hashlib.sha256(blob).hexdigest(),
                    size_bytes=len(blob),
                )
            )
        session.commit()
        return run.id


def _checkpoints(db: Database, run_id: uuid.UUID) -> list[int]:
    with db.read_session() as session:
        return [c.epoch for c in run_store.list_checkpoints(session, run_id=run_id)]


def test_purge_expired_checkpoints(db: Database, tenant: uuid.UUID, hk_settings: Settings) -> None:
    now = utcnow()
    ended = now - timedelta(minutes=1)
    leftover = {  # ended before this change, or by a path that did not clean up
        s: _run_with_checkpoints(db, tenant, s, ended)
        for s in (RunStatus.succeeded, RunStatus.cancelled)
    }
    failed_recent = _run_with_checkpoints(db, tenant, RunStatus.failed, ended)
    failed_old = _run_with_checkpoints(
        db, tenant, RunStatus.failed, now - timedelta(seconds=RETENTION + 1)
    )
    active = [
        _run_with_checkpoints(db, tenant, s, None)
        for s in (RunStatus.queued, RunStatus.running, RunStatus.cancelling)
    ]

    assert housekeeping.purge_expired_checkpoints(db, hk_settings, now=now) == 2 * 3
    for run_id in (*leftover.values(), failed_old):
        assert _checkpoints(db, run_id) == []
    # Within its retention a failed run keeps what it has; active runs are never touched.
    for run_id in (failed_recent, *active):
        assert _checkpoints(db, run_id) == [2, 1]

    # Once the retention has passed since it ended, the failed run's go too.
    later = ended + timedelta(seconds=RETENTION + 1)
    assert housekeeping.purge_expired_checkpoints(db, hk_settings, now=later) == 2
    assert _checkpoints(db, failed_recent) == []
    for run_id in active:
        assert _checkpoints(db, run_id) == [2, 1]
    assert housekeeping.purge_expired_checkpoints(db, hk_settings, now=later) == 0


def _upload(folder: Path, name: str, age_seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"partial body")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_sweep_stale_uploads(hk_settings: Settings) -> None:
    # No uploads folder yet (nothing was ever uploaded): nothing to do.
    assert housekeeping.sweep_stale_uploads(hk_settings) == []
    folder = hk_settings.data_dir / "uploads"
    stale = _upload(folder, "upload-dead.part", age_seconds=601)
    fresh = _upload(folder, "upload-live.part", age_seconds=5)
    other = _upload(folder, "notes.txt", age_seconds=10_000)  # not ours to remove

    assert housekeeping.sweep_stale_uploads(hk_settings) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()
    # With the clock moved on, the file that was fresh is stale too.
    later = time.time() + 600
    assert housekeeping.sweep_stale_uploads(hk_settings, now=later) == [fresh]
    assert other.exists()


def test_reconcile_pass_does_the_housekeeping(
    db: Database, tenant: uuid.UUID, hk_settings: Settings
) -> None:
    stale = _upload(hk_settings.data_dir / "uploads", "upload-dead.part", age_seconds=601)
    cancelled = _run_with_checkpoints(db, tenant, RunStatus.cancelled, utcnow())
    failed = _run_with_checkpoints(
        db, tenant, RunStatus.failed, utcnow() - timedelta(seconds=RETENTION + 1)
    )

    assert runs.reconcile(db, settings=hk_settings, enqueue=Sent()) == []
    assert not stale.exists()
    assert _checkpoints(db, cancelled) == [] and _checkpoints(db, failed) == []
