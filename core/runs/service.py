"""Runs seen from the API: submit, read, list, history, cancel.

``submit_run`` commits the run ``queued`` and only then enqueues its id (a lost message leaves a
queued run the reconciler re-sends).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.broker import Enqueuer
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.limits import check_concurrent_runs
from core.pagination import Page, newest_page
from core.runs.validation import check_spec, dataset_for_run, parent_model
from store import datasets as dataset_store
from store import runs as run_store
from store.base import Reads, utcnow
from store.tables import MAX_NAME_CHARS, Run, RunStatus

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_CHARS = 200


def _not_found() -> NotFound:
    return NotFound("run not found", code="run_not_found")


def _request_hash(
    dataset_id: uuid.UUID,
    name: str | None,
    spec: dict[str, Any] | None,
    init_model_id: uuid.UUID | None,
) -> str:
    body: dict[str, Any] = {"dataset_id": str(dataset_id), "name": name, "spec": spec or {}}
    if init_model_id is not None:  # absent otherwise: keys stored before warm starts still match
        body["init_from_model_id"] = str(init_model_id)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _replay(existing: Run, request_sha256: str) -> Run:
    if existing.request_sha256 != request_sha256:
        raise Conflict(
            "this Idempotency-Key was already used with a different request",
            {"field": "Idempotency-Key"},
            code="idempotency_key_reused",
        )
    return existing


def submit_run(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    dataset_id: uuid.UUID,
    spec: dict[str, Any] | None,
    name: str | None,
    settings: Settings,
    enqueue: Enqueuer,
    idempotency_key: str | None = None,
    init_model_id: uuid.UUID | None = None,
) -> Run:
    """Validate, commit the run ``queued``, then enqueue its id. A repeat of an
    ``Idempotency-Key`` (same tenant, same body) returns the first run.

    With ``init_model_id`` (a warm start) the model must be the tenant's and fit the dataset
    and spec, checked here, before anything is queued. Its progress counts on from the
    model's epochs, as its history does: ``epoch`` starts at them and ``epochs`` adds this
    run's ``spec.epochs``."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters",
            {"field": "Idempotency-Key"},
        )
    if name is not None and len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"name is longer than {MAX_NAME_CHARS} characters",
            {"field": "name", "limit": MAX_NAME_CHARS},
        )
    request_sha256 = _request_hash(dataset_id, name, spec, init_model_id)
    if idempotency_key is not None:
        existing = run_store.get_run_by_idempotency_key(
            session, tenant_id=tenant_id, key=idempotency_key
        )
        if existing is not None:
            session.rollback()
            return _replay(existing, request_sha256)
    check_concurrent_runs(session, tenant_id=tenant_id, settings=settings)
    dataset = dataset_for_run(session, tenant_id, dataset_id)
    parent = None if init_model_id is None else parent_model(session, tenant_id, init_model_id)
    check = check_spec(dataset, spec, settings, parent=parent)
    done_before = 0 if parent is None else parent.epochs_trained
    # Lock the dataset row (PostgreSQL) so a concurrent delete cannot slip between the check
    # above and the insert; delete_dataset takes the same lock.
    locked = dataset_store.get_dataset(
        session, tenant_id=tenant_id, dataset_id=dataset_id, for_update=True
    )
    if locked is None:
        raise InvalidInput(
            "dataset not found",
            {"field": "dataset_id", "value": str(dataset_id)},
            code="dataset_not_found",
        )
    run = Run(
        tenant_id=tenant_id,
        dataset_id=dataset_id,
        name=name,
        status=RunStatus.queued,
        spec=check.spec.model_dump(mode="json"),
        epoch=done_before,
        epochs=done_before + check.spec.epochs,
        init_model_id=init_model_id,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
    )
    try:
        run_store.insert_run(session, run)
        session.commit()
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race.
        session.rollback()
        if idempotency_key is None:
            raise
        existing = run_store.get_run_by_idempotency_key(
            session, tenant_id=tenant_id, key=idempotency_key
        )
        if existing is None:
            raise
        return _replay(existing, request_sha256)
    try:
        enqueue(str(run.id))
    except Exception as exc:
        # Committed but not sent: the reconciler re-sends queued runs it finds waiting.
        log.warning("run %s committed but not enqueued (%s); left for the reconciler", run.id, exc)
    return run


def get_run(session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
    row = run_store.get_run(session, tenant_id=tenant_id, run_id=run_id)
    if row is None:
        raise _not_found()
    return row


def run_view(reads: Reads, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Row[Any]:
    """The run as a row, for reading (no ORM entity)."""
    row = run_store.run_view(reads, tenant_id=tenant_id, run_id=run_id)
    if row is None:
        raise _not_found()
    return row


def parse_status(status: str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status)
    except ValueError:
        raise InvalidInput(
            f"unknown status {status!r}; one of {', '.join(s.value for s in RunStatus)}",
            {"field": "status", "value": status},
        ) from None


def list_runs(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    dataset_id: uuid.UUID | None = None,
    sweep_id: uuid.UUID | None = None,
) -> Page[Row[Any]]:
    wanted = parse_status(status)
    return newest_page(
        lambda after, n: run_store.list_runs(
            reads, tenant_id=tenant_id, limit=n, after=after, status=wanted,
            dataset_id=dataset_id, sweep_id=sweep_id,
        ),
        limit=limit,
        cursor=cursor,
    )  # fmt: skip


def get_history(
    reads: Reads,
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    since_epoch: int = 0,
    max_points: int | None = None,
) -> list[Row[Any]]:
    """Epochs after ``since_epoch`` in order; ``max_points`` thins evenly, keeping the first,
    the last and the run's best epoch (the one ``best`` names, which a chart marks). Epoch
    rows carry the tenant, so only an empty answer needs the run looked up (404 or no epochs
    yet): a history read is one round trip."""
    if since_epoch < 0:
        raise InvalidInput("since_epoch must be >= 0", {"field": "since_epoch"})
    if max_points is not None and max_points < 1:
        raise InvalidInput("max_points must be >= 1", {"field": "max_points"})
    epochs = partial(run_store.list_epochs, reads, tenant_id=tenant_id, run_id=run_id)
    rows: list[Row[Any]] = []
    if max_points is None:
        rows = epochs(since_epoch=since_epoch)
    elif span := run_store.epoch_span(
        reads, tenant_id=tenant_id, run_id=run_id, since_epoch=since_epoch
    ):
        first, last = span
        if last - first < max_points:
            rows = epochs(since_epoch=since_epoch)
        elif max_points == 1:
            rows = epochs(since_epoch=last - 1)
        else:
            # Epochs first, first + every, ... and the last: at most max_points of them (epochs
            # are numbered without gaps, so this is every n-th row).
            every = -(-(last - first) // (max_points - 1))
            rows = _within(
                epochs(since_epoch=since_epoch, every=every, first=first, last=last),
                max_points, every, first,
            )  # fmt: skip
    if not rows:
        run_view(reads, tenant_id=tenant_id, run_id=run_id)
    return rows


def _within(rows: list[Row[Any]], max_points: int, every: int, first: int) -> list[Row[Any]]:
    """The thinned rows, at most ``max_points``: the best epoch, when it is off the grid and
    one row too many, takes the place of the grid row before it (never the first or last)."""
    if len(rows) <= max_points:
        return rows
    off_grid = [i for i, r in enumerate(rows) if (r.epoch - first) % every]
    if not off_grid:
        return rows[:max_points]
    best = off_grid[0]
    drop = best - 1 if best - 1 > 0 else best + 1
    if drop == len(rows) - 1:  # the last row stays; then the best gives way
        drop = best
    return [r for i, r in enumerate(rows) if i != drop]


def cancel_run(session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> RunStatus:
    run = get_run(session, tenant_id=tenant_id, run_id=run_id)
    new_status = run_store.request_cancel(session, run_id=run.id, now=utcnow())
    if new_status is None:
        session.rollback()
        current = get_run(session, tenant_id=tenant_id, run_id=run_id)
        raise Conflict(
            f"the run has already finished ({current.status.value})",
            {"status": current.status.value},
            code="run_finished",
        )
    session.commit()
    return new_status
