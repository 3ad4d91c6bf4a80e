"""Runs, their per-epoch history and checkpoints. SQL only; never commits.

Worker writes are fenced: they match on the run's current ``lease_token`` (and an active
status), so a stale attempt that lost its lease changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from store.base import Keyset, Reads, newest_first, page_params, plain_columns
from store.tables import ACTIVE_RUN_STATUSES, Checkpoint, Run, RunEpoch, RunStatus

# The statuses in which a worker attempt holds the run.
HELD_STATUSES = (RunStatus.running, RunStatus.cancelling)


def insert_run(session: Session, run: Run) -> Run:
    session.add(run)
    session.flush()
    return run


def insert_runs(session: Session, runs: list[Run]) -> None:
    """Many at once (a sweep's trials): one flush, batched by the ORM."""
    session.add_all(runs)
    session.flush()


_OWNED = (Run.id == bindparam("run_id")) & (Run.tenant_id == bindparam("tenant_id"))
_GET = select(Run).where(_OWNED)
_VIEW = select(*plain_columns(Run)).where(_OWNED)


def get_run(session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
    return session.scalars(_GET, {"tenant_id": tenant_id, "run_id": run_id}).one_or_none()


def run_view(reads: Reads, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Row[Any] | None:
    """The run as a row, for reading."""
    return reads.execute(_VIEW, {"tenant_id": tenant_id, "run_id": run_id}).one_or_none()


def active_run_ids_for_dataset(
    session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID
) -> list[uuid.UUID]:
    """Runs that still read the dataset (pending, queued, running or cancelling)."""
    return list(
        session.scalars(
            select(Run.id)
            .where(
                Run.tenant_id == tenant_id,
                Run.dataset_id == dataset_id,
                Run.status.in_((RunStatus.pending, *ACTIVE_RUN_STATUSES)),
            )
            .order_by(Run.created_at)
        )
    )


def insert_epoch(session: Session, epoch: RunEpoch) -> RunEpoch:
    # UNIQUE(run_id, epoch) turns a duplicate epoch from a zombie attempt into IntegrityError.
    session.add(epoch)
    session.flush()
    return epoch


def list_epochs(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    since_epoch: int = 0,
    every: int = 1,
    first: int = 1,
    last: int | None = None,
) -> list[Row[Any]]:
    """The epochs after ``since_epoch`` in order; with ``every`` > 1 only the epochs ``first``,
    ``first + every``, ... and ``last``, and the run's best epoch (``runs.best_epoch``, so a
    chart's best-epoch marker lands on a drawn point), picked in the database on the (run_id,
    epoch) index (a 100,000-epoch history thinned to 2,000 points reads about 2,000 rows)."""
    params = {"tenant_id": tenant_id, "run_id": run_id, "since_epoch": since_epoch}
    if every > 1:
        params.update(every=every, first=first, last=last)
    return list(reads.execute(_EPOCHS[every > 1], params))


_AFTER = (
    (RunEpoch.tenant_id == bindparam("tenant_id"))
    & (RunEpoch.run_id == bindparam("run_id"))
    & (RunEpoch.epoch > bindparam("since_epoch"))
)
_EPOCHS_AFTER = select(*plain_columns(RunEpoch)).where(_AFTER).order_by(RunEpoch.epoch)
_EVERY = (RunEpoch.epoch - bindparam("first")) % bindparam("every") == 0
_BEST = (
    select(Run.best_epoch)
    .where((Run.id == bindparam("run_id")) & (Run.tenant_id == bindparam("tenant_id")))
    .scalar_subquery()
)
_EPOCHS = {
    False: _EPOCHS_AFTER,
    True: _EPOCHS_AFTER.where(
        or_(_EVERY, RunEpoch.epoch == bindparam("last"), RunEpoch.epoch == _BEST)
    ),
}
_SPAN = select(func.min(RunEpoch.epoch), func.max(RunEpoch.epoch)).where(_AFTER)


def epoch_span(
    reads: Reads, *, tenant_id: uuid.UUID, run_id: uuid.UUID, since_epoch: int = 0
) -> tuple[int, int] | None:
    """The first and last epoch after ``since_epoch``; None when there is none."""
    params = {"tenant_id": tenant_id, "run_id": run_id, "since_epoch": since_epoch}
    first, last = reads.execute(_SPAN, params).one()
    return None if first is None else (int(first), int(last))


def insert_checkpoint(session: Session, checkpoint: Checkpoint, *, keep: int = 2) -> Checkpoint:
    """Store a checkpoint and drop all but the newest ``keep`` of its run (latest + previous:
    if the latest turns out corrupt, resume falls back one step)."""
    session.add(checkpoint)
    session.flush()
    keep_ids = select(Checkpoint.id).where(Checkpoint.run_id == checkpoint.run_id)
    keep_ids = keep_ids.order_by(Checkpoint.epoch.desc()).limit(keep)
    session.execute(
        delete(Checkpoint).where(
            Checkpoint.run_id == checkpoint.run_id,
            Checkpoint.id.not_in(keep_ids.scalar_subquery()),
        )
    )
    return checkpoint


def list_checkpoints(session: Session, *, run_id: uuid.UUID) -> list[Checkpoint]:
    """Newest first, blobs included."""
    return list(
        session.scalars(
            select(Checkpoint)
            .options(undefer(Checkpoint.blob))
            .where(Checkpoint.run_id == run_id)
            .order_by(Checkpoint.epoch.desc())
        )
    )


def get_run_unscoped(session: Session, run_id: uuid.UUID) -> Run | None:
    """For the worker, which only knows the id (the tenant comes from the row)."""
    return session.get(Run, run_id, populate_existing=True)


def get_run_by_idempotency_key(session: Session, *, tenant_id: uuid.UUID, key: str) -> Run | None:
    return session.scalars(
        select(Run).where(Run.tenant_id == tenant_id, Run.idempotency_key == key)
    ).one_or_none()


def list_runs(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    after: Keyset | None,
    status: RunStatus | None = None,
    dataset_id: uuid.UUID | None = None,
    sweep_id: uuid.UUID | None = None,
) -> list[Row[Any]]:
    params: dict[str, Any] = {"tenant_id": tenant_id, **page_params(after, limit)}
    if status is not None:
        params["status"] = status
    if dataset_id is not None:
        params["dataset_id"] = dataset_id
    if sweep_id is not None:
        params["sweep_id"] = sweep_id
    query = _runs_page(
        status is not None, dataset_id is not None, sweep_id is not None, after is not None
    )
    return list(reads.execute(query, params))


@cache
def _runs_page(by_status: bool, by_dataset: bool, by_sweep: bool, resume: bool) -> Select[Any]:
    query = select(*plain_columns(Run)).where(Run.tenant_id == bindparam("tenant_id"))
    if by_status:
        query = query.where(Run.status == bindparam("status"))
    if by_dataset:
        query = query.where(Run.dataset_id == bindparam("dataset_id"))
    if by_sweep:
        query = query.where(Run.sweep_id == bindparam("sweep_id"))
    return newest_first(query, Run, resume=resume)


def browse_runs(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    offset: int,
    limit: int,
    sort: str,
    status: RunStatus | None = None,
    dataset_id: uuid.UUID | None = None,
    name_contains: str | None = None,
) -> tuple[list[Run], int]:
    """One page of the tenant's runs and how many match. ``sort``: ``created`` (newest first)
    or ``best``: the lowest best validation loss first; then runs without a validation split
    (their best loss is a training loss, not comparable), by it; runs with no epoch yet last."""
    where = [Run.tenant_id == tenant_id]
    if status is not None:
        where.append(Run.status == status)
    if dataset_id is not None:
        where.append(Run.dataset_id == dataset_id)
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Run.name.ilike(f"%{escaped}%", escape="\\"))
    order = (
        (
            Run.best_loss.is_(None),
            Run.best_metrics["val_loss"].as_float().is_(None),
            Run.best_loss,
            Run.created_at.desc(),
            Run.id,
        )
        if sort == "best"
        else (Run.created_at.desc(), Run.id.desc())
    )
    rows = session.scalars(select(Run).where(*where).order_by(*order).offset(offset).limit(limit))
    total = session.scalar(select(func.count()).select_from(Run).where(*where)) or 0
    return list(rows), total


def claim_run(session: Session, *, run_id: uuid.UUID, token: uuid.UUID, now: datetime) -> bool:
    """queued -> running with a fresh lease token; False if the run is not queued any more."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued)
        .values(
            status=RunStatus.running,
            lease_token=token,
            attempts=Run.attempts + 1,
            heartbeat_at=now,
            started_at=now,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def fenced_update(
    session: Session, *, run_id: uuid.UUID, token: uuid.UUID, values: dict[str, Any]
) -> bool:
    """Update a run only while ``token`` still holds it; False when the lease was lost."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.lease_token == token, Run.status.in_(HELD_STATUSES))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def lease_state(session: Session, *, run_id: uuid.UUID) -> tuple[uuid.UUID | None, bool] | None:
    """(lease token, cancel requested) of a run: the worker's cheap poll."""
    row = session.execute(
        select(Run.lease_token, Run.cancel_requested).where(Run.id == run_id)
    ).one_or_none()
    return None if row is None else (row[0], bool(row[1]))


def request_cancel(session: Session, *, run_id: uuid.UUID, now: datetime) -> RunStatus | None:
    """queued (or pending) -> cancelled at once (a queued run may hold checkpoints from an
    earlier attempt: they go with it); running -> cancelling (the worker finishes it).
    Returns the new status, or None when the run had already finished."""
    done = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_((RunStatus.queued, RunStatus.pending)))
        .values(status=RunStatus.cancelled, cancel_requested=True, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(done.rowcount) == 1:  # type: ignore[attr-defined]
        trim_checkpoints_at_end(session, run_id=run_id, status=RunStatus.cancelled)
        return RunStatus.cancelled
    held = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(HELD_STATUSES))
        .values(status=RunStatus.cancelling, cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    if int(held.rowcount) == 1:  # type: ignore[attr-defined]
        return RunStatus.cancelling
    return None


def delete_epochs_after(session: Session, *, run_id: uuid.UUID, epoch: int) -> None:
    """Drop history past a resume point (it is recomputed, bit-identically, by the new attempt)."""
    session.execute(delete(RunEpoch).where(RunEpoch.run_id == run_id, RunEpoch.epoch > epoch))


def delete_checkpoints(session: Session, *, run_id: uuid.UUID, after_epoch: int = -1) -> None:
    session.execute(
        delete(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.epoch > after_epoch)
    )


def trim_checkpoints_at_end(session: Session, *, run_id: uuid.UUID, status: RunStatus) -> None:
    """What a run that ended with ``status`` keeps: a failed one its newest checkpoint (to
    inspect or resume; core.housekeeping purges it after the retention), a succeeded or
    cancelled one nothing (it is never resumed)."""
    if status == RunStatus.failed:
        _keep_latest_checkpoint(session, run_id=run_id)
    else:
        delete_checkpoints(session, run_id=run_id)


def _keep_latest_checkpoint(session: Session, *, run_id: uuid.UUID) -> None:
    latest = select(func.max(Checkpoint.epoch)).where(Checkpoint.run_id == run_id)
    session.execute(
        delete(Checkpoint).where(
            Checkpoint.run_id == run_id, Checkpoint.epoch < latest.scalar_subquery()
        )
    )


def delete_finished_checkpoints(session: Session, *, failed_before: datetime) -> int:
    """Checkpoints nothing will resume from: all of succeeded and cancelled runs, and those of
    failed runs that finished before ``failed_before``. Returns how many went.

    Driven from the (small) checkpoints table: each row looks its run up by primary key,
    however many finished runs there are."""
    done = exists().where(
        Run.id == Checkpoint.run_id,
        or_(
            Run.status.in_((RunStatus.succeeded, RunStatus.cancelled)),
            and_(Run.status == RunStatus.failed, Run.finished_at < failed_before),
        ),
    )
    result = session.execute(
        delete(Checkpoint).where(done).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def stale_held_runs(session: Session, *, cutoff: datetime) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(run id, lease token) of running/cancelling runs whose heartbeat is older than cutoff."""
    rows = session.execute(
        select(Run.id, Run.lease_token).where(
            Run.status.in_(HELD_STATUSES), Run.heartbeat_at < cutoff
        )
    ).all()
    return [(r[0], r[1]) for r in rows if r[1] is not None]


def queued_run_ids(
    session: Session, *, created_before: datetime, limit: int = 100
) -> list[uuid.UUID]:
    """Queued runs waiting longer than expected: their message may have been lost."""
    query = select(Run.id).where(
        Run.status == RunStatus.queued,
        or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < created_before),
        Run.created_at < created_before,
    )
    return list(session.scalars(query.order_by(Run.created_at).limit(limit)))


def touch_queued(session: Session, *, run_ids: list[uuid.UUID], now: datetime) -> None:
    """Mark re-sent queued runs (heartbeat_at doubles as 'last sent') so they are not re-sent
    again on every reconciler pass."""
    if run_ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status == RunStatus.queued)
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )


def set_model(session: Session, *, run_id: uuid.UUID, model_id: uuid.UUID) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(model_id=model_id)
        .execution_options(synchronize_session=False)
    )


def count_by_status(session: Session) -> dict[RunStatus, int]:
    """Runs per status over every tenant (the operator's view: GET /metrics)."""
    query = select(Run.status, func.count()).group_by(Run.status)
    return {RunStatus(status): int(n) for status, n in session.execute(query)}
