"""The reconciler: the database says what should be happening, the broker is made to agree.
Runs in the API process, so it outlives the worker faults it repairs; its writes are fenced,
so several replicas are safe. Each pass also does the housekeeping (core.housekeeping)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from core import housekeeping
from core.broker import Enqueuer
from core.config import Settings
from core.runs import events
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import RunStatus

log = logging.getLogger(__name__)


def reap_stale_runs(db: Database, *, settings: Settings, now: datetime | None = None) -> list[str]:
    """Held runs whose heartbeat is older than the lease go back to queued (or to failed
    ``worker_lost`` once attempts reach the cap). Returns the ids put back to queued.

    Only a worker that stopped writing lets a heartbeat go stale: a lost broker connection
    does not (the task keeps running, see core.broker), so the attempts the reaper counts
    are worker deaths. A run it ends keeps what its status allows: a cancelled one no
    checkpoint, a failed one its latest (purged later by core.housekeeping).

    Every change is published (core.runs.events) like a worker's: a client following the run
    hears of the requeue (running -> queued) at once, not at the next fallback poll."""
    publish = events.make_publisher(settings)
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.lease_seconds)
    requeued: list[str] = []
    with db.read_session() as session:
        stale = run_store.stale_held_runs(session, cutoff=cutoff)
    for run_id, token in stale:
        with db.session() as session:
            run = run_store.get_run_unscoped(session, run_id)
            if run is None or run.lease_token != token:
                session.rollback()
                continue
            if run.cancel_requested:
                values: dict[str, Any] = {"status": RunStatus.cancelled, "finished_at": now}
            elif run.attempts >= settings.max_attempts:
                values = {
                    "status": RunStatus.failed,
                    "error_code": "worker_lost",
                    "error_message": f"the worker stopped responding ({run.attempts} attempts)",
                    "finished_at": now,
                }
            else:
                values = {"status": RunStatus.queued, "heartbeat_at": now}
            values["lease_token"] = None
            if run_store.fenced_update(session, run_id=run_id, token=token, values=values):
                if values["status"] != RunStatus.queued:
                    run_store.trim_checkpoints_at_end(
                        session, run_id=run_id, status=values["status"]
                    )
                session.commit()
                publish(run_id)
                if values["status"] == RunStatus.queued:
                    requeued.append(str(run_id))
            else:
                session.rollback()
    return requeued


def resend_queued(
    db: Database, *, settings: Settings, enqueue: Enqueuer, now: datetime | None = None
) -> list[str]:
    """Re-send runs queued longer than ``requeue_after_seconds`` (message lost, broker restarted,
    send failed after commit). A duplicate message is harmless: the claim is atomic."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.requeue_after_seconds)
    with db.session() as session:
        ids = run_store.queued_run_ids(session, created_before=cutoff)
        run_store.touch_queued(session, run_ids=ids, now=now)
        session.commit()
    sent: list[str] = []
    for run_id in ids:
        try:
            enqueue(str(run_id))
            sent.append(str(run_id))
        except Exception as exc:
            log.warning("reconciler: could not re-send run %s: %s", run_id, exc)
            break
    return sent


def reconcile(db: Database, *, settings: Settings, enqueue: Enqueuer) -> list[str]:
    """One reconciler pass: reap stale runs, (re-)send what waits in queued, then housekeeping.
    Returns the run ids sent."""
    requeued = reap_stale_runs(db, settings=settings)
    for run_id in requeued:
        try:
            enqueue(run_id)
        except Exception as exc:
            log.warning("reconciler: could not send run %s: %s", run_id, exc)
    sent = requeued + resend_queued(db, settings=settings, enqueue=enqueue)
    housekeeping.housekeep(db, settings)
    return sent
