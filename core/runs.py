"""Runs: submit, validate, read, cancel, and the worker side (claim, train, finish, reap).

Transactions: the service owns them. ``submit_run`` commits the run ``queued`` and only then
enqueues its id (a lost message leaves a queued run the reconciler re-sends). ``run_training``
never holds a transaction open while it trains: claim + commit, then one short fenced write per
epoch / heartbeat / checkpoint, then finish + commit. Every worker write matches on the lease
token of its attempt, so an attempt that lost its lease (reaped, reclaimed) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import datasets as dataset_service
from core.broker import Enqueuer
from core.config import Settings, get_settings
from core.errors import Conflict, DescentError, InvalidInput, NotFound
from core.limits import check_concurrent_runs
from core.pagination import Page, check_limit, decode_cursor, encode_cursor
from models import (
    ArtifactError,
    DataError,
    EngineError,
    EpochEnd,
    ResumeError,
    SpecError,
    TrainingError,
    TrainingSpec,
    TrainingState,
    count_parameters,
    flops_per_epoch,
    parse_spec,
    resolve_spec,
    train,
)
from store import datasets as dataset_store
from store import models as model_store
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import (
    FINISHED_RUN_STATUSES,
    Checkpoint,
    Dataset,
    Model,
    Run,
    RunEpoch,
    RunStatus,
    Task,
)

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_CHARS = 200
# Columns of run_epochs; anything else the trainer reports goes to run_epochs.metrics.
_EPOCH_COLUMNS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "learning_rate")
_LATEST_KEYS = (
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "val_mae",
    "val_rmse",
    "val_r2",
)


class RetryableRunError(Exception):
    """An attempt ended for a reason that is not the user's (and the run went back to queued):
    the task re-sends itself with a backoff."""


# ---------------------------------------------------------------------------------------------
# Spec validation


@dataclass(frozen=True)
class SpecCheck:
    spec: TrainingSpec  # resolved
    n_inputs: int
    n_outputs: int
    n_parameters: int
    flops_per_epoch: int
    estimated_seconds: float
    warnings: list[str] = field(default_factory=list)


def _validation_error(exc: ValidationError) -> InvalidInput:
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid"}
    path = f"spec.{first['field']}" if first["field"] else "spec"
    return InvalidInput(
        f"invalid field {path!r}: {first['message']}",
        {"field": path, "errors": errors},
        code="invalid_spec",
    )


def _spec_error(exc: SpecError) -> InvalidInput:
    return InvalidInput(
        exc.message, {**exc.details, "field": f"spec.{exc.field}"}, code="invalid_spec"
    )


def _n_inputs(session: Session, dataset: Dataset) -> int:
    if "categorical" not in dataset.feature_types:
        return dataset.n_features
    # One-hot width needs the vocabularies, which live in the blob.
    _row, parsed = dataset_service.load_dataset(
        session, tenant_id=dataset.tenant_id, dataset_id=dataset.id
    )
    n_numeric = sum(1 for t in parsed.feature_types if t == "numeric")
    return n_numeric + sum(len(c) for c in parsed.categories)


def check_spec(
    session: Session, dataset: Dataset, raw_spec: dict[str, Any] | None, settings: Settings
) -> SpecCheck:
    """Parse + resolve a spec against a dataset; InvalidInput (422) names the field."""
    try:
        parsed = parse_spec(raw_spec or {})
    except ValidationError as exc:
        raise _validation_error(exc) from None
    classes = dataset.classes or []
    numeric_labels = dataset.task == Task.regression or all(
        isinstance(c, int | float) and not isinstance(c, bool) for c in classes
    )
    try:
        resolved = resolve_spec(
            parsed,
            task=str(dataset.task),  # type: ignore[arg-type]
            n_classes=len(classes),
            numeric_labels=numeric_labels,
        )
    except SpecError as exc:
        raise _spec_error(exc) from None
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if resolved.task == "classification" and dataset.task != Task.classification:
        raise InvalidInput(
            "task 'classification' needs a label with classes; this dataset is a regression one",
            {"field": "spec.task"},
            code="invalid_spec",
        )
    n_inputs = _n_inputs(session, dataset)
    if resolved.task == "classification":
        n_outputs = 1 if resolved.loss == "binary_crossentropy" else len(classes)
    else:
        n_outputs = 1
    n_parameters = count_parameters(resolved, n_inputs, n_outputs)
    if n_parameters > settings.max_parameters:
        raise InvalidInput(
            f"the network has {n_parameters} parameters, more than the limit of "
            f"{settings.max_parameters}; use fewer or smaller layers",
            {
                "field": "spec.layers",
                "n_parameters": n_parameters,
                "limit": settings.max_parameters,
            },
            code="too_many_parameters",
        )
    n_train = max(1, round(dataset.n_rows * (1.0 - resolved.validation_split)))
    flops = flops_per_epoch(resolved, n_inputs, n_outputs, n_train)
    estimated = flops * resolved.epochs / settings.estimate_flops_per_second
    warnings: list[str] = []
    if resolved.batch_size > n_train:
        warnings.append(
            f"batch_size {resolved.batch_size} is larger than the {n_train} training rows; "
            "each epoch is one full batch"
        )
    if resolved.validation_split == 0.0:
        warnings.append("validation_split is 0: no validation metrics will be reported")
    elif dataset.n_rows - n_train < 10:
        warnings.append(f"the validation split holds only {dataset.n_rows - n_train} rows")
    if resolved.max_runtime_seconds is not None and estimated > resolved.max_runtime_seconds:
        warnings.append(
            f"estimated {estimated:.0f} s exceeds max_runtime_seconds; training may stop early"
        )
    return SpecCheck(
        spec=resolved,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        n_parameters=n_parameters,
        flops_per_epoch=flops,
        estimated_seconds=round(estimated, 3),
        warnings=warnings,
    )


def _dataset_for_run(session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    row = dataset_store.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    if row is None:
        raise InvalidInput(
            "dataset not found",
            {"field": "dataset_id", "value": str(dataset_id)},
            code="dataset_not_found",
        )
    return row


def validate_run(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    dataset_id: uuid.UUID,
    spec: dict[str, Any] | None,
    settings: Settings,
) -> SpecCheck:
    dataset = _dataset_for_run(session, tenant_id, dataset_id)
    return check_spec(session, dataset, spec, settings)


# ---------------------------------------------------------------------------------------------
# Submit / read / cancel


def _not_found() -> NotFound:
    return NotFound("run not found", code="run_not_found")


def _request_hash(dataset_id: uuid.UUID, name: str | None, spec: dict[str, Any] | None) -> str:
    body = {"dataset_id": str(dataset_id), "name": name, "spec": spec or {}}
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
) -> Run:
    """Validate, commit the run ``queued``, then enqueue its id. A repeat of an
    ``Idempotency-Key`` (same tenant, same body) returns the first run."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters",
            {"field": "Idempotency-Key"},
        )
    if name is not None and len(name) > 200:
        raise InvalidInput("name is longer than 200 characters", {"field": "name"})
    request_sha256 = _request_hash(dataset_id, name, spec)
    if idempotency_key is not None:
        existing = run_store.get_run_by_idempotency_key(
            session, tenant_id=tenant_id, key=idempotency_key
        )
        if existing is not None:
            session.rollback()
            return _replay(existing, request_sha256)
    check_concurrent_runs(session, tenant_id=tenant_id, settings=settings)
    dataset = _dataset_for_run(session, tenant_id, dataset_id)
    check = check_spec(session, dataset, spec, settings)
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
        epochs=check.spec.epochs,
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


def list_runs(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    dataset_id: uuid.UUID | None = None,
) -> Page[Run]:
    check_limit(limit)
    wanted: RunStatus | None = None
    if status is not None:
        try:
            wanted = RunStatus(status)
        except ValueError:
            raise InvalidInput(
                f"unknown status {status!r}; one of {', '.join(s.value for s in RunStatus)}",
                {"field": "status", "value": status},
            ) from None
    after = decode_cursor(cursor) if cursor else None
    rows = run_store.list_runs(
        session,
        tenant_id=tenant_id,
        limit=limit + 1,
        after=after,
        status=wanted,
        dataset_id=dataset_id,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page(items=rows, next_cursor=next_cursor)


def get_history(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    since_epoch: int = 0,
    max_points: int | None = None,
) -> list[RunEpoch]:
    """Epochs after ``since_epoch`` in order; ``max_points`` thins evenly, keeping the last."""
    if since_epoch < 0:
        raise InvalidInput("since_epoch must be >= 0", {"field": "since_epoch"})
    if max_points is not None and max_points < 1:
        raise InvalidInput("max_points must be >= 1", {"field": "max_points"})
    get_run(session, tenant_id=tenant_id, run_id=run_id)
    rows = run_store.list_epochs(
        session, tenant_id=tenant_id, run_id=run_id, since_epoch=since_epoch
    )
    if max_points is not None and len(rows) > max_points:
        if max_points == 1:
            return rows[-1:]
        picks = np.linspace(0, len(rows) - 1, max_points).round().astype(int)
        rows = [rows[i] for i in sorted(set(picks.tolist()))]
    return rows


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


# ---------------------------------------------------------------------------------------------
# Worker side


def _features(parsed: dataset_service.ParsedDataset) -> NDArray[Any]:
    """What the engine takes: floats when every feature is numeric, else an object table with
    the categorical columns as strings."""
    if not parsed.categorical_names:
        return parsed.X_numeric
    X = np.empty((parsed.n_rows, parsed.n_features), dtype=object)
    num_j = cat_j = 0
    for j, kind in enumerate(parsed.feature_types):
        if kind == "numeric":
            X[:, j] = parsed.X_numeric[:, num_j]
            num_j += 1
        else:
            vocab = np.asarray(parsed.categories[cat_j], dtype=object)
            X[:, j] = vocab[parsed.X_categorical[:, cat_j]]
            cat_j += 1
    return X


def _latest_checkpoint(session: Session, run_id: uuid.UUID) -> TrainingState | None:
    """The newest checkpoint whose hash and content check out (a corrupt one falls back)."""
    for ckpt in run_store.list_checkpoints(session, run_id=run_id):
        if hashlib.sha256(ckpt.blob).hexdigest() != ckpt.sha256:
            log.warning(
                "run %s: checkpoint at epoch %s fails its hash; skipped", run_id, ckpt.epoch
            )
            continue
        try:
            return TrainingState.from_bytes(ckpt.blob)
        except ArtifactError as exc:
            log.warning("run %s: checkpoint at epoch %s unreadable (%s)", run_id, ckpt.epoch, exc)
    return None


def _epoch_row(run: Run, metrics: dict[str, Any]) -> RunEpoch:
    extra = {k: v for k, v in metrics.items() if k not in (*_EPOCH_COLUMNS, "epoch", "seconds")}
    return RunEpoch(
        tenant_id=run.tenant_id,
        run_id=run.id,
        epoch=int(metrics["epoch"]),
        train_loss=float(metrics["train_loss"]),
        val_loss=_opt_float(metrics.get("val_loss")),
        train_accuracy=_opt_float(metrics.get("train_accuracy")),
        val_accuracy=_opt_float(metrics.get("val_accuracy")),
        learning_rate=float(metrics["learning_rate"]),
        seconds=float(metrics["seconds"]),
        metrics=extra or None,
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class LeaseLost(Exception):
    """Another attempt holds the run now; this one stops writing and leaves quietly."""


@dataclass
class _Attempt:
    """One worker attempt at one run: its lease token and the fenced writes it makes."""

    db: Database
    run: Run
    token: uuid.UUID
    settings: Settings
    started: float = field(default_factory=time.monotonic)
    first_epoch: int = 0
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_poll: float = 0.0
    last_heartbeat: float = field(default_factory=time.monotonic)
    cancel_requested: bool = False
    lease_lost: bool = False

    def write(self, values: dict[str, Any], extra: Callable[[Session], None] | None = None) -> None:
        with self.db.session() as session:
            if not run_store.fenced_update(
                session, run_id=self.run.id, token=self.token, values=values
            ):
                session.rollback()
                self.lease_lost = True
                raise LeaseLost(str(self.run.id))
            if extra is not None:
                extra(session)
            session.commit()

    def should_stop(self) -> bool:
        """Polled between batches: a cheap read at most every cancel_poll_seconds."""
        if self.lease_lost or self.cancel_requested:
            return True
        now = time.monotonic()
        if now - self.last_poll < self.settings.cancel_poll_seconds:
            return False
        self.last_poll = now
        with self.db.read_session() as session:
            state = run_store.lease_state(session, run_id=self.run.id)
        if state is None or state[0] != self.token:
            self.lease_lost = True
            return True
        if state[1]:
            self.cancel_requested = True
            return True
        if now - self.last_heartbeat >= self.settings.heartbeat_seconds:
            self.last_heartbeat = now
            try:
                self.write({"heartbeat_at": utcnow()})
            except LeaseLost:
                return True
        return False

    def on_epoch(self, e: EpochEnd) -> None:
        now = time.monotonic()
        done_here = e.epoch - self.first_epoch
        per_epoch = (now - self.started) / max(done_here, 1)
        remaining = max(e.epochs - e.epoch, 0)
        latest = {k: e.metrics[k] for k in _LATEST_KEYS if e.metrics.get(k) is not None}
        values = {
            "epoch": e.epoch,
            "epochs": e.epochs,
            "fraction": e.epoch / e.epochs,
            "eta_seconds": round(per_epoch * remaining, 3),
            "latest_metrics": latest,
            "heartbeat_at": utcnow(),
        }
        checkpoint_bytes: bytes | None = None
        if (
            e.epoch < e.epochs
            and now - self.last_checkpoint >= self.settings.checkpoint_every_seconds
        ):
            checkpoint_bytes = e.state().to_bytes()
        row = _epoch_row(self.run, e.metrics)

        def extra(session: Session) -> None:
            run_store.insert_epoch(session, row)
            if checkpoint_bytes is not None:
                run_store.insert_checkpoint(
                    session,
                    Checkpoint(
                        tenant_id=self.run.tenant_id,
                        run_id=self.run.id,
                        epoch=e.epoch,
                        blob=checkpoint_bytes,
                        sha256=hashlib.sha256(checkpoint_bytes).hexdigest(),
                        size_bytes=len(checkpoint_bytes),
                    ),
                )

        self.write(values, extra)
        self.last_heartbeat = now
        if checkpoint_bytes is not None:
            self.last_checkpoint = now


def _claim(db: Database, run_id: uuid.UUID) -> tuple[Run, uuid.UUID] | None:
    token = uuid.uuid4()
    with db.session() as session:
        if not run_store.claim_run(session, run_id=run_id, token=token, now=utcnow()):
            session.rollback()
            return None
        session.commit()
    with db.read_session() as session:
        run = run_store.get_run_unscoped(session, run_id)
    assert run is not None
    return run, token


def _fail(attempt: _Attempt, code: str, message: str) -> str:
    attempt.write(
        {
            "status": RunStatus.failed,
            "error_code": code,
            "error_message": message[:2000],
            "finished_at": utcnow(),
            "lease_token": None,
        }
    )
    return RunStatus.failed.value


def run_training(
    db: Database,
    run_id: str | uuid.UUID,
    *,
    settings: Settings | None = None,
    time_limit_errors: tuple[type[BaseException], ...] = (),
) -> str:
    """Claim a queued run, train it (resuming from its latest valid checkpoint), and finish it.

    Returns the run's final status as this attempt saw it, or ``"skipped"`` when the run was
    not claimable (already running elsewhere, finished, cancelled, unknown id).
    ``time_limit_errors`` are what the caller's per-attempt time limit raises (Celery's
    ``SoftTimeLimitExceeded``): like any infrastructure error the run goes back to queued and
    resumes from its checkpoint, and once attempts run out it fails ``time_limit``.
    """
    settings = settings or get_settings()
    try:
        rid = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        log.warning("runs.train: not a run id: %r", run_id)
        return "skipped"
    claimed = _claim(db, rid)
    if claimed is None:
        return "skipped"
    run, token = claimed
    attempt = _Attempt(db=db, run=run, token=token, settings=settings)
    try:
        return _train_claimed(attempt)
    except LeaseLost:
        log.warning("run %s: lease lost; this attempt stops without writing", rid)
        return "lease_lost"
    except RetryableRunError:
        raise
    except Exception as exc:
        # Not the user's fault (database, memory, a bug, a soft time limit): back to queued for
        # another attempt while attempts remain, else failed.
        log.exception("run %s: attempt failed", rid)
        try:
            if run.attempts >= settings.max_attempts:
                if isinstance(exc, time_limit_errors):
                    _fail(
                        attempt,
                        "time_limit",
                        f"each of {run.attempts} attempts reached the per-attempt time limit",
                    )
                else:
                    _fail(
                        attempt, "internal_error", f"training failed after {run.attempts} attempts"
                    )
                return RunStatus.failed.value
            attempt.write(
                {"status": RunStatus.queued, "lease_token": None, "heartbeat_at": utcnow()}
            )
        except LeaseLost:
            return "lease_lost"
        raise RetryableRunError(str(rid)) from exc


def _train_claimed(attempt: _Attempt) -> str:
    from threadpoolctl import threadpool_limits

    run, settings, db = attempt.run, attempt.settings, attempt.db
    if run.dataset_id is None:
        return _fail(attempt, "dataset_missing", "the run's dataset no longer exists")
    with db.read_session() as session:
        try:
            _row, parsed = dataset_service.load_dataset(
                session, tenant_id=run.tenant_id, dataset_id=run.dataset_id
            )
        except DescentError as exc:
            return _fail(attempt, exc.code, exc.message)
        state = _latest_checkpoint(session, run.id)
    resume_epoch = state.epoch if state is not None else 0
    attempt.first_epoch = resume_epoch

    def drop_later_epochs(session: Session) -> None:
        # History past the resume point is recomputed (bit-identically) by this attempt.
        run_store.delete_epochs_after(session, run_id=run.id, epoch=resume_epoch)
        # Checkpoints past it are corrupt ones that were skipped; they are rewritten.
        run_store.delete_checkpoints(session, run_id=run.id, after_epoch=resume_epoch)

    attempt.write({"heartbeat_at": utcnow()}, drop_later_epochs)
    X, y = _features(parsed), parsed.y
    spec = TrainingSpec.model_validate(run.spec)

    def fit(resume: TrainingState | None) -> Any:
        with threadpool_limits(settings.blas_threads):
            return train(
                X,
                y,
                spec,
                feature_names=parsed.feature_names,
                feature_types=list(parsed.feature_types),
                on_epoch=attempt.on_epoch,
                should_stop=attempt.should_stop,
                resume=resume,
            )

    try:
        try:
            result = fit(state)
        except ResumeError as exc:
            # The checkpoint does not fit (engine or data changed): start over, cleanly.
            log.warning("run %s: cannot resume (%s); starting from epoch 0", run.id, exc)
            attempt.first_epoch = 0

            def restart(session: Session) -> None:
                run_store.delete_epochs_after(session, run_id=run.id, epoch=0)
                run_store.delete_checkpoints(session, run_id=run.id)

            attempt.write({"epoch": 0, "fraction": 0.0}, restart)
            result = fit(None)
    except (DataError, SpecError, TrainingError) as exc:
        return _fail(attempt, exc.code, exc.message)
    except EngineError as exc:
        return _fail(attempt, exc.code, exc.message)

    if attempt.lease_lost:
        raise LeaseLost(str(run.id))
    if result.stop_reason == "cancelled":
        attempt.write({"status": RunStatus.cancelled, "finished_at": utcnow(), "lease_token": None})
        return RunStatus.cancelled.value
    return _finish(attempt, result)


def _finish(attempt: _Attempt, result: Any) -> str:
    run = attempt.run
    model = result.model
    blob = model.to_bytes()
    metrics = _json_safe(model.metrics)
    model_row = Model(
        id=uuid.uuid4(),
        tenant_id=run.tenant_id,
        run_id=run.id,
        task=Task(model.task),
        input={
            "feature_names": list(model.feature_names),
            "feature_types": list(model.feature_types),
            "n_features": int(model.n_features),
        },
        classes=_json_safe(model.classes),
        metrics={**metrics, "stop_reason": result.stop_reason},
        blob=blob,
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
    )
    history = result.history
    epochs_done = len(history)

    def store_model(session: Session) -> None:
        # The fence was checked by this transaction's first statement.
        model_store.insert_model(session, model_row)
        run_store.set_model(session, run_id=run.id, model_id=model_row.id)
        run_store.delete_checkpoints(session, run_id=run.id)

    attempt.write(
        {
            "status": RunStatus.succeeded,
            "finished_at": utcnow(),
            "epoch": epochs_done,
            "fraction": 1.0,
            "eta_seconds": 0.0,
            "lease_token": None,
        },
        store_model,
    )
    return RunStatus.succeeded.value


def _json_safe(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


# ---------------------------------------------------------------------------------------------
# Reconciler


def reap_stale_runs(db: Database, *, settings: Settings, now: datetime | None = None) -> list[str]:
    """Held runs whose heartbeat is older than the lease go back to queued (or to failed
    ``worker_lost`` once attempts reach the cap). Returns the ids put back to queued."""
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
                session.commit()
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
    """One reconciler pass: reap stale runs, then (re-)send what waits in queued."""
    requeued = reap_stale_runs(db, settings=settings)
    for run_id in requeued:
        try:
            enqueue(run_id)
        except Exception as exc:
            log.warning("reconciler: could not send run %s: %s", run_id, exc)
    return requeued + resend_queued(db, settings=settings, enqueue=enqueue)


__all__ = [
    "FINISHED_RUN_STATUSES",
    "RetryableRunError",
    "SpecCheck",
    "cancel_run",
    "check_spec",
    "get_history",
    "get_run",
    "list_runs",
    "reap_stale_runs",
    "reconcile",
    "resend_queued",
    "run_training",
    "submit_run",
    "validate_run",
]
