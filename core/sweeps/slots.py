"""Trials waiting for a slot: a sweep runs at most ``max_parallel`` trials at once, and never
more than the tenant's concurrent-run limit leaves free, so its other trials wait ``pending``
(never sent, never claimable, not counted as live). Slots are filled

* at submit (core.sweeps.service),
* when a trial ends, by the worker that ended it (core.runs.training), and
* by the housekeeping, as a safety net for trials ended by the reaper or a worker that died
  between its last write and this (core.housekeeping).

Each pass takes the tenant's row lock first (the same lock submit_run's limit check takes, on
PostgreSQL; SQLite's write session is serialised), counts, and moves only rows still pending:
several workers and API processes may run it at once without overfilling.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from core.broker import Enqueuer
from core.config import Settings
from store import sweeps as sweep_store
from store import tenants as tenant_store
from store.base import utcnow
from store.session import Database
from store.tables import ACTIVE_RUN_STATUSES, RunStatus, SweepStatus

log = logging.getLogger(__name__)


def promote_waiting(
    session: Session, *, sweep_id: uuid.UUID, settings: Settings, sent_at: datetime | None
) -> list[uuid.UUID]:
    """Move as many pending trials to queued as the slots allow; returns them (not committed)."""
    sweep = sweep_store.get_sweep_unscoped(session, sweep_id)
    if sweep is None or sweep.status != SweepStatus.running:
        return []
    # The tenant's limit, counted under its row lock (core.limits.check_concurrent_runs).
    live = tenant_store.count_live_runs(session, tenant_id=sweep.tenant_id, lock=True)
    free = min(
        sweep.max_parallel - sweep_store.count_live_trials(session, sweep_id=sweep_id),
        settings.max_concurrent_runs_per_tenant - live,
    )
    if free <= 0:
        return []
    waiting = sweep_store.pending_trial_ids(session, sweep_id=sweep_id, limit=free)
    return sweep_store.promote(session, run_ids=waiting, sent_at=sent_at)


def finish_if_done(session: Session, *, sweep_id: uuid.UUID) -> SweepStatus | None:
    """End a running sweep whose trials are all final: succeeded if any trial did, else failed
    if any failed, else cancelled. Returns the status it ended with (None: not yet, or ended
    already)."""
    counts = sweep_store.trial_status_counts(session, sweep_id=sweep_id)
    if any(counts.get(s) for s in (RunStatus.pending, *ACTIVE_RUN_STATUSES)):
        return None
    if counts.get(RunStatus.succeeded):
        status = SweepStatus.succeeded
    elif counts.get(RunStatus.failed):
        status = SweepStatus.failed
    else:
        status = SweepStatus.cancelled
    ended = sweep_store.finish_sweep(session, sweep_id=sweep_id, status=status, now=utcnow())
    return status if ended else None


def send(run_ids: list[uuid.UUID], enqueue: Enqueuer) -> None:
    for run_id in run_ids:
        try:
            enqueue(str(run_id))
        except Exception as exc:
            # Committed queued: the reconciler re-sends it (core.runs.reconcile.resend_queued).
            log.warning("trial %s queued but not sent (%s); left for the reconciler", run_id, exc)


def after_trial(
    db: Database, *, sweep_id: uuid.UUID, settings: Settings, enqueue: Enqueuer
) -> list[uuid.UUID]:
    """A trial ended: give its slot to a waiting trial, or end the sweep if none is left."""
    with db.session() as session:
        promoted = promote_waiting(session, sweep_id=sweep_id, settings=settings, sent_at=utcnow())
        if not promoted:
            finish_if_done(session, sweep_id=sweep_id)
        session.commit()
    send(promoted, enqueue)
    return promoted


def tend_sweeps(db: Database, settings: Settings) -> int:
    """The housekeeping's pass over running sweeps: promote what slots allow (left unsent: the
    reconciler's next re-send sends them) and end the sweeps that are done. Returns how many
    trials it promoted."""
    with db.read_session() as session:
        running = sweep_store.running_sweeps(session)
    promoted = 0
    for sweep_id, _tenant in running:
        with db.session() as session:
            promoted += len(
                promote_waiting(session, sweep_id=sweep_id, settings=settings, sent_at=None)
            )
            finish_if_done(session, sweep_id=sweep_id)
            session.commit()
    return promoted
