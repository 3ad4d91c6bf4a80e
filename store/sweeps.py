"""Sweeps and the SQL their trials need (slots, rungs, the leaderboard). SQL only; never commits.

A trial is a run with ``sweep_id`` set; what applies to runs (the lease fencing, the reaper)
applies to trials unchanged.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, select, update
from sqlalchemy.orm import Session

from store.base import Keyset, Reads, newest_first, page_params, plain_columns
from store.tables import ACTIVE_RUN_STATUSES, Run, RunEpoch, RunStatus, Sweep, SweepStatus

# Metrics kept in their own run_epochs columns; any other is read from run_epochs.metrics.
_METRIC_COLUMNS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def metric_value(metric: str) -> ColumnElement[Any]:
    """The epoch's value of ``metric`` as a float expression, on either backend."""
    if metric in _METRIC_COLUMNS:
        column: ColumnElement[Any] = getattr(RunEpoch, metric)
        return column
    extra: ColumnElement[Any] = RunEpoch.metrics[metric].as_float()
    return extra


def insert_sweep(session: Session, sweep: Sweep) -> Sweep:
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(
    session: Session, *, tenant_id: uuid.UUID, sweep_id: uuid.UUID, for_update: bool = False
) -> Sweep | None:
    query = select(Sweep).where(Sweep.id == sweep_id, Sweep.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def get_sweep_unscoped(session: Session, sweep_id: uuid.UUID) -> Sweep | None:
    """For the worker and the housekeeping, which know only the id."""
    return session.get(Sweep, sweep_id, populate_existing=True)


def lock_sweep(session: Session, sweep_id: uuid.UUID) -> SweepStatus | None:
    """Take the sweep row FOR UPDATE (PostgreSQL; SQLite's write session is serialised
    already): rung decisions of one sweep are made one after another. Returns its status."""
    return session.scalar(select(Sweep.status).where(Sweep.id == sweep_id).with_for_update())


_VIEW = select(*plain_columns(Sweep)).where(
    (Sweep.id == bindparam("sweep_id")) & (Sweep.tenant_id == bindparam("tenant_id"))
)


def sweep_view(reads: Reads, *, tenant_id: uuid.UUID, sweep_id: uuid.UUID) -> Row[Any] | None:
    return reads.execute(_VIEW, {"tenant_id": tenant_id, "sweep_id": sweep_id}).one_or_none()


_PAGE = {
    resume: newest_first(
        select(*plain_columns(Sweep)).where(Sweep.tenant_id == bindparam("tenant_id")),
        Sweep,
        resume=resume,
    )
    for resume in (False, True)
}


def list_sweeps(
    reads: Reads, *, tenant_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[Row[Any]]:
    params = {"tenant_id": tenant_id, **page_params(after, limit)}
    return list(reads.execute(_PAGE[after is not None], params))


def trials(reads: Reads, *, sweep_id: uuid.UUID) -> list[Row[Any]]:
    """The sweep's trials in their expansion order."""
    query = (
        select(
            Run.id, Run.trial, Run.params, Run.status, Run.epoch, Run.stopped_early,
            Run.model_id,
        )
        .where(Run.sweep_id == sweep_id)
        .order_by(Run.trial)
    )  # fmt: skip
    return list(reads.execute(query))


def best_values(
    reads: Reads, *, sweep_id: uuid.UUID, metric: str, highest: bool
) -> dict[uuid.UUID, float]:
    """Each trial's best value of ``metric`` over its epochs (trials without one are left out)."""
    value = metric_value(metric)
    best = func.max(value) if highest else func.min(value)
    query = (
        select(RunEpoch.run_id, best)
        .join(Run, Run.id == RunEpoch.run_id)
        .where(Run.sweep_id == sweep_id)
        .group_by(RunEpoch.run_id)
    )
    return {row[0]: float(row[1]) for row in reads.execute(query) if row[1] is not None}


def count_live_trials(session: Session, *, sweep_id: uuid.UUID) -> int:
    """Trials holding or waiting for a worker (queued, running, cancelling)."""
    query = select(func.count()).where(
        Run.sweep_id == sweep_id, Run.status.in_(ACTIVE_RUN_STATUSES)
    )
    return int(session.scalar(query) or 0)


def pending_trial_ids(session: Session, *, sweep_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    query = (
        select(Run.id)
        .where(Run.sweep_id == sweep_id, Run.status == RunStatus.pending)
        .order_by(Run.trial)
        .limit(limit)
    )
    return list(session.scalars(query))


def promote(
    session: Session, *, run_ids: list[uuid.UUID], sent_at: datetime | None
) -> list[uuid.UUID]:
    """pending -> queued, only for those still pending (a cancel may have won); returns them
    in the order given (RETURNING's order is the scan's).
    ``sent_at`` marks them sent (heartbeat_at, as core.runs.reconcile reads it); None leaves
    them for the reconciler's next re-send."""
    if not run_ids:
        return []
    result = session.execute(
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.pending)
        .values(status=RunStatus.queued, heartbeat_at=sent_at)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    moved = {row[0] for row in result}
    return [run_id for run_id in run_ids if run_id in moved]


def trial_status_counts(session: Session, *, sweep_id: uuid.UUID) -> dict[RunStatus, int]:
    query = select(Run.status, func.count()).where(Run.sweep_id == sweep_id).group_by(Run.status)
    return {RunStatus(status): int(n) for status, n in session.execute(query)}


def running_sweeps(session: Session, *, limit: int = 100) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(sweep id, tenant id) of running sweeps, oldest first: the housekeeping's safety net."""
    query = (
        select(Sweep.id, Sweep.tenant_id)
        .where(Sweep.status == SweepStatus.running)
        .order_by(Sweep.created_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def finish_sweep(
    session: Session, *, sweep_id: uuid.UUID, status: SweepStatus, now: datetime
) -> bool:
    """running -> ``status``; False when it had already ended (another process did it)."""
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.status == SweepStatus.running)
        .values(status=status, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def active_trial_ids(session: Session, *, sweep_id: uuid.UUID) -> list[uuid.UUID]:
    """Trials a cancel still has to stop (pending, queued, running)."""
    query = select(Run.id).where(
        Run.sweep_id == sweep_id,
        Run.status.in_((RunStatus.pending, RunStatus.queued, RunStatus.running)),
    )
    return list(session.scalars(query.order_by(Run.trial)))


def rung_values(
    session: Session, *, sweep_id: uuid.UUID, epoch: int, metric: str
) -> dict[uuid.UUID, float]:
    """The value of ``metric`` at ``epoch`` of every trial that has reached it."""
    value = metric_value(metric)
    query = (
        select(RunEpoch.run_id, value)
        .join(Run, Run.id == RunEpoch.run_id)
        .where(Run.sweep_id == sweep_id, RunEpoch.epoch == epoch)
    )
    return {row[0]: float(row[1]) for row in session.execute(query) if row[1] is not None}


def set_rung(session: Session, *, run_id: uuid.UUID, rung: int, stopped: bool) -> None:
    """Record a rung decision; called inside the epoch's fenced transaction."""
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(rung=rung, stopped_early=stopped)
        .execution_options(synchronize_session=False)
    )
