"""core.sweeps.slots: racing promoters never overfill a sweep, and the housekeeping fills a
slot no worker filled (a trial ended by the reaper) and ends a finished sweep."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from core import housekeeping
from core.config import Settings
from core.runs import resend_queued
from core.sweeps import slots, submit_sweep
from store import sweeps as sweep_store
from store.base import utcnow
from store.session import Database
from store.tables import Run, RunStatus, Sweep, SweepStatus
from tests.api.runs_fixtures import SPEC, Sent, tenant_with_blobs


def _sweep(db: Database, settings: Settings, tmp_path: Path, sent: Sent, n: int) -> uuid.UUID:
    tenant, dataset_id = tenant_with_blobs(db, settings, tmp_path, "slots")
    with db.session() as session:
        sweep = submit_sweep(
            session, tenant_id=tenant, dataset_id=dataset_id, name=None, spec=SPEC,
            method="grid", space={"seed": list(range(n))}, n_trials=None, seed=None,
            metric="val_loss", mode=None, max_parallel=1, early_termination=None,
            settings=settings, enqueue=sent,
        )  # fmt: skip
        return sweep.sweep.id


def _statuses(db: Database, sweep_id: uuid.UUID) -> list[RunStatus]:
    with db.read_session() as session:
        return [row.status for row in sweep_store.trials(session, sweep_id=sweep_id)]


def _end(db: Database, sweep_id: uuid.UUID, trial: int, status: RunStatus) -> None:
    """What the reaper does to a trial whose worker died: end it, filling no slot."""
    with db.session() as session:
        session.execute(
            update(Run)
            .where(Run.sweep_id == sweep_id, Run.trial == trial)
            .values(status=status, finished_at=utcnow())
        )
        session.commit()


def test_racing_promoters_fill_one_free_slot_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    sent = Sent()
    sweep_id = _sweep(db, settings, tmp_path, sent, n=6)
    assert _statuses(db, sweep_id) == [RunStatus.queued] + [RunStatus.pending] * 5
    _end(db, sweep_id, 0, RunStatus.succeeded)
    barrier = threading.Barrier(4)

    def fill() -> None:
        barrier.wait()
        slots.after_trial(db, sweep_id=sweep_id, settings=settings, enqueue=sent)

    threads = [threading.Thread(target=fill) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (
        _statuses(db, sweep_id) == [RunStatus.succeeded, RunStatus.queued] + [RunStatus.pending] * 4
    )
    assert len(sent) == 2 and len(set(sent)) == 2


def test_the_housekeeping_fills_slots_the_reaper_left_and_ends_the_sweep(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    sent = Sent()
    sweep_id = _sweep(db, settings, tmp_path, sent, n=2)
    _end(db, sweep_id, 0, RunStatus.failed)
    housekeeping.housekeep(db, settings)
    assert _statuses(db, sweep_id) == [RunStatus.failed, RunStatus.queued]
    # Promoted unsent: the reconciler's re-send sends it.
    resent = resend_queued(
        db, settings=settings, enqueue=sent, now=utcnow() + timedelta(seconds=600)
    )
    with db.read_session() as session:
        trials = sweep_store.trials(session, sweep_id=sweep_id)
    assert resent == [str(trials[1].id)]
    _end(db, sweep_id, 1, RunStatus.succeeded)
    housekeeping.housekeep(db, settings)
    with db.read_session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        assert sweep.status == SweepStatus.succeeded and sweep.finished_at is not None
