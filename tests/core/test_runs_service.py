"""core.runs on both backends: the atomic claim, fencing, crash + resume from a checkpoint
(each epoch exactly once, bit-identical to an uninterrupted run), corrupt checkpoints, user
errors, cooperative cancel, the reconciler, and which checkpoints a run keeps when it ends."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core import runs
from core.auth import authenticate, create_api_key
from core.config import Settings
from core.datasets import create_dataset
from core.runs import lease, training
from models import EpochEnd
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import Checkpoint, Run, RunStatus
from tests.api.runs_fixtures import SPEC, Sent, blobs_csv


class Crash(BaseException):
    """Stands in for the worker process dying (not an Exception: nothing catches it)."""


@pytest.fixture
def tenant(db: Database) -> uuid.UUID:
    with db.session() as session:
        key = create_api_key(session, "svc")
    with db.read_session() as session:
        return authenticate(session, key).tenant_id


@pytest.fixture
def svc_settings(settings: Settings) -> Settings:
    # A checkpoint after every epoch, so a crash resumes from the last one.
    return settings.model_copy(
        update={"checkpoint_every_seconds": 1e-6, "cancel_poll_seconds": 0.0}
    )


@pytest.fixture
def dataset(db: Database, tenant: uuid.UUID, svc_settings: Settings, tmp_path: Path) -> uuid.UUID:
    path = tmp_path / "blobs.csv"
    path.write_bytes(blobs_csv())
    with db.session() as session:
        row = create_dataset(
            session, tenant_id=tenant, upload_path=path, filename="blobs.csv", name=None,
            label=None, settings=svc_settings,
        )  # fmt: skip
    return row.id


def _submit(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, settings: Settings, **spec: object
) -> str:
    sent = Sent()
    with db.session() as session:
        run = runs.submit_run(
            session, tenant_id=tenant, dataset_id=dataset, spec={**SPEC, **spec}, name=None,
            settings=settings, enqueue=sent,
        )  # fmt: skip
    assert sent == [str(run.id)]
    return str(run.id)


def _run(db: Database, run_id: str) -> Run:
    with db.read_session() as session:
        row = run_store.get_run_unscoped(session, uuid.UUID(run_id))
        assert row is not None
        return row


def _checkpoints(db: Database, run_id: str | uuid.UUID) -> list[int]:
    """Epochs of the run's checkpoints, newest first."""
    with db.read_session() as session:
        rows = run_store.list_checkpoints(session, run_id=uuid.UUID(str(run_id)))
        return [c.epoch for c in rows]


def _add_checkpoints(db: Database, tenant: uuid.UUID, run_id: uuid.UUID, *epochs: int) -> None:
    with db.session() as session:
        for epoch in epochs:
            blob = f"state {epoch}".encode()
            session.add(
                Checkpoint(
                    tenant_id=tenant,
                    run_id=run_id,
                    epoch=epoch,
                    blob=blob,
                    sha256=hashlib.sha256(blob).hexdigest(),
                    size_bytes=len(blob),
                )
            )
        session.commit()


def _history(db: Database, tenant: uuid.UUID, run_id: str) -> list[tuple[int, float]]:
    with db.read_session() as session:
        rows = runs.get_history(session, tenant_id=tenant, run_id=uuid.UUID(run_id))
    return [(r.epoch, r.train_loss) for r in rows]


def test_claim_is_atomic(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, svc_settings: Settings
) -> None:
    run_id = uuid.UUID(_submit(db, tenant, dataset, svc_settings))
    with db.session() as session:
        assert run_store.claim_run(session, run_id=run_id, token=uuid.uuid4(), now=utcnow())
        session.commit()
    with db.session() as session:
        assert not run_store.claim_run(session, run_id=run_id, token=uuid.uuid4(), now=utcnow())
    assert training.run_training(db, str(run_id), settings=svc_settings) == "skipped"
    assert training.run_training(db, "not-a-uuid", settings=svc_settings) == "skipped"
    assert _run(db, str(run_id)).attempts == 1


def test_crash_then_resume_is_exact(
    db: Database,
    tenant: uuid.UUID,
    dataset: uuid.UUID,
    svc_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = _submit(db, tenant, dataset, svc_settings, epochs=5)
    assert training.run_training(db, reference, settings=svc_settings) == "succeeded"
    expected = _history(db, tenant, reference)
    assert [e for e, _ in expected] == [1, 2, 3, 4, 5]

    crashing = _submit(db, tenant, dataset, svc_settings, epochs=5)
    original = lease.Attempt.on_epoch

    def on_epoch_then_die(self: lease.Attempt, e: EpochEnd) -> None:
        original(self, e)
        if e.epoch == 3:
            raise Crash

    monkeypatch.setattr(lease.Attempt, "on_epoch", on_epoch_then_die)
    with pytest.raises(Crash):
        training.run_training(db, crashing, settings=svc_settings)
    monkeypatch.setattr(lease.Attempt, "on_epoch", original)
    stuck = _run(db, crashing)
    assert stuck.status == RunStatus.running and stuck.epoch == 3
    assert _checkpoints(db, crashing)  # what the resume starts from

    # The reaper sees the stale heartbeat and puts the run back to queued.
    later = utcnow() + timedelta(seconds=svc_settings.lease_seconds + 1)
    assert runs.reap_stale_runs(db, settings=svc_settings, now=later) == [crashing]
    assert _run(db, crashing).status == RunStatus.queued
    assert training.run_training(db, crashing, settings=svc_settings) == "succeeded"
    final = _run(db, crashing)
    assert final.attempts == 2 and final.model_id is not None
    assert _history(db, tenant, crashing) == expected
    # A succeeded run keeps no checkpoint: its model is what it keeps.
    assert _checkpoints(db, crashing) == [] and _checkpoints(db, reference) == []


def test_corrupt_checkpoint_falls_back_and_zombie_is_fenced(
    db: Database,
    tenant: uuid.UUID,
    dataset: uuid.UUID,
    svc_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = _submit(db, tenant, dataset, svc_settings, epochs=5)
    original = lease.Attempt.on_epoch
    zombie: list[lease.Attempt] = []

    def on_epoch_then_die(self: lease.Attempt, e: EpochEnd) -> None:
        original(self, e)
        if e.epoch == 3:
            zombie.append(self)
            raise Crash

    monkeypatch.setattr(lease.Attempt, "on_epoch", on_epoch_then_die)
    with pytest.raises(Crash):
        training.run_training(db, run_id, settings=svc_settings)
    monkeypatch.setattr(lease.Attempt, "on_epoch", original)
    with db.session() as session:
        session.execute(
            update(Checkpoint)
            .where(Checkpoint.run_id == uuid.UUID(run_id), Checkpoint.epoch == 3)
            .values(blob=b"garbage")
        )
        session.commit()
    later = utcnow() + timedelta(seconds=svc_settings.lease_seconds + 1)
    runs.reap_stale_runs(db, settings=svc_settings, now=later)
    assert training.run_training(db, run_id, settings=svc_settings) == "succeeded"
    assert [e for e, _ in _history(db, tenant, run_id)] == [1, 2, 3, 4, 5]
    # The first attempt's lease is gone: anything it still tries to write is refused.
    with pytest.raises(lease.LeaseLost):
        zombie[0].write({"heartbeat_at": utcnow()})
    assert zombie[0].should_stop()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_user_errors_fail_the_run(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, svc_settings: Settings
) -> None:
    run_id = _submit(
        db, tenant, dataset, svc_settings,
        optimizer={"name": "sgd", "learning_rate": 10.0, "momentum": 0.99},
        layers=[{"units": 64}] * 3,
        preprocessing={"standardize": False},
    )  # fmt: skip
    assert training.run_training(db, run_id, settings=svc_settings) == "failed"
    run = _run(db, run_id)
    assert run.error_code == "diverged" and "diverged" in (run.error_message or "")
    assert run.finished_at is not None and run.lease_token is None
    # A user error is final: a redelivered message does nothing.
    assert training.run_training(db, run_id, settings=svc_settings) == "skipped"


def test_cancel_while_running(
    db: Database,
    tenant: uuid.UUID,
    dataset: uuid.UUID,
    svc_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = _submit(db, tenant, dataset, svc_settings, epochs=20)
    original = lease.Attempt.on_epoch

    def cancel_at_two(self: lease.Attempt, e: EpochEnd) -> None:
        original(self, e)
        if e.epoch == 2:
            with db.session() as session:
                assert runs.cancel_run(session, tenant_id=tenant, run_id=uuid.UUID(run_id)) == (
                    RunStatus.cancelling
                )

    monkeypatch.setattr(lease.Attempt, "on_epoch", cancel_at_two)
    assert training.run_training(db, run_id, settings=svc_settings) == "cancelled"
    run = _run(db, run_id)
    assert run.status == RunStatus.cancelled and run.model_id is None and run.finished_at
    assert [e for e, _ in _history(db, tenant, run_id)] == [1, 2]
    # A cancelled run is never resumed: its checkpoints (one per epoch here) are gone.
    assert _checkpoints(db, run_id) == []


def test_failed_run_keeps_only_its_latest_checkpoint(
    db: Database,
    tenant: uuid.UUID,
    dataset: uuid.UUID,
    svc_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = svc_settings.model_copy(update={"max_attempts": 1})
    run_id = _submit(db, tenant, dataset, settings, epochs=6)
    original = lease.Attempt.on_epoch

    def on_epoch_then_break(self: lease.Attempt, e: EpochEnd) -> None:
        original(self, e)
        if e.epoch == 3:
            raise RuntimeError("a bug, not the user's")

    monkeypatch.setattr(lease.Attempt, "on_epoch", on_epoch_then_break)
    assert training.run_training(db, run_id, settings=settings) == "failed"
    assert _run(db, run_id).error_code == "internal_error"
    assert _checkpoints(db, run_id) == [3]


def test_cancelled_runs_keep_no_checkpoint(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, svc_settings: Settings
) -> None:
    later = utcnow() + timedelta(seconds=svc_settings.lease_seconds + 1)
    # Queued after an earlier attempt (checkpoints kept for its resume), then cancelled.
    queued = uuid.UUID(_submit(db, tenant, dataset, svc_settings))
    _add_checkpoints(db, tenant, queued, 1, 2)
    with db.session() as session:
        assert runs.cancel_run(session, tenant_id=tenant, run_id=queued) == RunStatus.cancelled
    assert _checkpoints(db, queued) == []
    # Cancel requested, then its worker died: the reaper ends it cancelled.
    held = uuid.UUID(_submit(db, tenant, dataset, svc_settings))
    with db.session() as session:
        assert run_store.claim_run(session, run_id=held, token=uuid.uuid4(), now=utcnow())
        session.commit()
    _add_checkpoints(db, tenant, held, 1, 2)
    with db.session() as session:
        assert runs.cancel_run(session, tenant_id=tenant, run_id=held) == RunStatus.cancelling
    assert runs.reap_stale_runs(db, settings=svc_settings, now=later) == []
    assert _run(db, str(held)).status == RunStatus.cancelled
    assert _checkpoints(db, held) == []


def test_reaper_gives_up_after_max_attempts(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, svc_settings: Settings
) -> None:
    run_id = uuid.UUID(_submit(db, tenant, dataset, svc_settings))
    with db.session() as session:
        run_store.claim_run(session, run_id=run_id, token=uuid.uuid4(), now=utcnow())
        session.execute(
            update(Run).where(Run.id == run_id).values(attempts=svc_settings.max_attempts)
        )
        session.commit()
    _add_checkpoints(db, tenant, run_id, 4, 5)
    later = utcnow() + timedelta(seconds=svc_settings.lease_seconds + 1)
    assert runs.reap_stale_runs(db, settings=svc_settings, now=later) == []
    run = _run(db, str(run_id))
    assert run.status == RunStatus.failed and run.error_code == "worker_lost"
    assert _checkpoints(db, run_id) == [5]


def test_resend_queued(
    db: Database, tenant: uuid.UUID, dataset: uuid.UUID, svc_settings: Settings
) -> None:
    run_id = _submit(db, tenant, dataset, svc_settings)
    sent = Sent()
    assert runs.resend_queued(db, settings=svc_settings, enqueue=sent) == []
    later = utcnow() + timedelta(seconds=svc_settings.requeue_after_seconds + 1)
    assert runs.resend_queued(db, settings=svc_settings, enqueue=sent, now=later) == [run_id]
    # Just re-sent: not again on the next pass.
    assert runs.resend_queued(db, settings=svc_settings, enqueue=sent, now=later) == []
    assert sent == [run_id]
