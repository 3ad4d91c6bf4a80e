"""The worker side of a run: claim it, train it (resuming from its latest valid checkpoint),
finish it. The only module that imports the trainer (``models.trainer``)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from core import datasets as dataset_service
from core.broker import CelerySender, Enqueuer
from core.config import Settings, get_settings
from core.errors import DescentError
from core.metrics import counting_epochs
from core.runs import events
from core.runs.lease import Attempt, LeaseLost, claim, fail
from core.runs.validation import parent_model
from core.sweeps import asha, slots
from models import (
    ArtifactError,
    DataError,
    EngineError,
    ResumeError,
    SpecError,
    TrainingError,
    TrainingSpec,
    TrainingState,
)
from models.trainer import train
from models.vocabulary import Task
from store import models as model_store
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import Model, RunStatus

log = logging.getLogger(__name__)


class RetryableRunError(Exception):
    """An attempt ended for a reason that is not the user's (and the run went back to queued):
    the task re-sends itself with a backoff."""


def _features(parsed: dataset_service.ParsedDataset) -> NDArray[Any]:
    """What the engine takes: floats when every feature is numeric, else an object table with
    the categorical columns as strings."""
    if not parsed.categorical_names:
        return parsed.X_numeric.astype(np.float64, copy=False)  # stored compact, trained wide
    X = np.empty((parsed.n_rows, parsed.n_features), dtype=object)
    num_j = cat_j = 0
    for j, kind in enumerate(parsed.feature_types):
        if kind == "numeric":
            X[:, j] = parsed.X_numeric[:, num_j].astype(np.float64)
            num_j += 1
        else:
            # Code -1 is a missing value: None, which the engine imputes.
            vocab = np.asarray([*parsed.categories[cat_j], None], dtype=object)
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


@lru_cache(maxsize=1)
def _sender(settings: Settings) -> CelerySender:
    # One per worker process, connected on first use: what a trial's end queues next.
    return CelerySender(settings)


def run_training(
    db: Database,
    run_id: str | uuid.UUID,
    *,
    settings: Settings | None = None,
    time_limit_errors: tuple[type[BaseException], ...] = (),
    enqueue: Enqueuer | None = None,
) -> str:
    """Claim a queued run, train it (resuming from its latest valid checkpoint), and finish it.

    Returns the run's final status as this attempt saw it, or ``"skipped"`` when the run was
    not claimable (already running elsewhere, finished, cancelled, unknown id).
    ``time_limit_errors`` are what the caller's per-attempt time limit raises (Celery's
    ``SoftTimeLimitExceeded``): like any infrastructure error the run goes back to queued and
    resumes from its checkpoint, and once attempts run out it fails ``time_limit``.

    A sweep trial that ends gives its slot to a waiting trial of its sweep (sent with
    ``enqueue``, by default the broker of ``settings``), or ends the sweep.
    """
    settings = settings or get_settings()
    try:
        rid = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        log.warning("runs.train: not a run id: %r", run_id)
        return "skipped"
    claimed = claim(db, rid)
    if claimed is None:
        return "skipped"
    run, token = claimed
    publish = events.make_publisher(settings)
    publish(run.id)  # queued -> running
    attempt = Attempt(db=db, run=run, token=token, settings=settings, publish=publish)
    if run.sweep_id is None:
        return _attempt(attempt, time_limit_errors)
    with db.read_session() as session:
        attempt.rung_judge = asha.judge_for(session, run)
    status = _attempt(attempt, time_limit_errors)
    if status in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled):
        try:
            slots.after_trial(
                db, sweep_id=run.sweep_id, settings=settings, enqueue=enqueue or _sender(settings)
            )
        except Exception as exc:  # the trial has ended; the housekeeping fills the slot later
            log.warning("run %s: could not fill its sweep's slot (%s)", run.id, exc)
    return status


def _attempt(attempt: Attempt, time_limit_errors: tuple[type[BaseException], ...]) -> str:
    run, settings, rid = attempt.run, attempt.settings, attempt.run.id
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
                    fail(
                        attempt,
                        "time_limit",
                        f"each of {run.attempts} attempts reached the per-attempt time limit",
                    )
                else:
                    fail(
                        attempt, "internal_error", f"training failed after {run.attempts} attempts"
                    )
                return RunStatus.failed.value
            attempt.write(
                {"status": RunStatus.queued, "lease_token": None, "heartbeat_at": utcnow()}
            )
        except LeaseLost:
            return "lease_lost"
        raise RetryableRunError(str(rid)) from exc


def _train_claimed(attempt: Attempt) -> str:
    from threadpoolctl import threadpool_limits

    run, settings, db = attempt.run, attempt.settings, attempt.db
    if run.dataset_id is None:
        return fail(attempt, "dataset_missing", "the run's dataset no longer exists")
    with db.read_session() as session:
        try:
            dataset_row, parsed = dataset_service.load_dataset(
                session, tenant_id=run.tenant_id, dataset_id=run.dataset_id
            )
            # A warm start: the model it begins from (checked at submit; models are immutable).
            parent = (
                None
                if run.init_model_id is None
                else parent_model(session, run.tenant_id, run.init_model_id)
            )
        except DescentError as exc:
            return fail(attempt, exc.code, exc.message)
        state = _latest_checkpoint(session, run.id)
        image_shape = dataset_row.image_shape
    # A warm start's epochs count on from its model's (the engine numbers them so).
    epochs_before = 0 if parent is None else parent.epochs_trained
    resume_epoch = state.epoch if state is not None else epochs_before
    attempt.first_epoch = attempt.last_epoch = resume_epoch
    attempt.epochs_before = epochs_before

    def drop_later_epochs(session: Session) -> None:
        # History past the resume point is recomputed (bit-identically) by this attempt.
        run_store.delete_epochs_after(session, run_id=run.id, epoch=resume_epoch)
        # Checkpoints past it are corrupt ones that were skipped; they are rewritten.
        run_store.delete_checkpoints(session, run_id=run.id, after_epoch=resume_epoch)

    attempt.write({"heartbeat_at": utcnow()}, drop_later_epochs)
    X, y = _features(parsed), parsed.y
    spec = TrainingSpec.model_validate(run.spec)
    if spec.task == Task.classification and parsed.task == Task.regression:
        y = y.astype(np.int64)  # whole numbers asked to be classes (checked at submit)

    def fit(resume: TrainingState | None) -> Any:
        with threadpool_limits(settings.blas_threads):
            return train(
                X,
                y,
                spec,
                feature_names=parsed.feature_names,
                feature_types=list(parsed.feature_types),
                on_epoch=counting_epochs(attempt.on_epoch),
                should_stop=attempt.should_stop,
                resume=resume,
                # The checkpoint records this model too: resuming checks it is the same one.
                init_model=parent,
            )

    try:
        try:
            result = fit(state)
        except ResumeError as exc:
            # The checkpoint does not fit (engine or data changed): start over, cleanly.
            log.warning("run %s: cannot resume (%s); starting over", run.id, exc)
            attempt.first_epoch = attempt.last_epoch = epochs_before

            def restart(session: Session) -> None:
                run_store.delete_epochs_after(session, run_id=run.id, epoch=0)
                run_store.delete_checkpoints(session, run_id=run.id)

            attempt.write({"epoch": epochs_before, "fraction": 0.0}, restart)
            result = fit(None)
    except (DataError, SpecError, TrainingError) as exc:
        return fail(attempt, exc.code, exc.message)
    except EngineError as exc:
        return fail(attempt, exc.code, exc.message)

    if attempt.lease_lost:
        raise LeaseLost(str(run.id))
    if result.stop_reason == "cancelled" and attempt.stopped_early:
        # Stopped at an ASHA rung (core.sweeps.asha): it ends succeeded, with the model it had
        # at that rung, flagged stopped_early (recorded with the decision).
        return _finish(attempt, result, image_shape, stop_reason="early_termination")
    if result.stop_reason == "cancelled":

        def drop_checkpoints(session: Session) -> None:
            run_store.trim_checkpoints_at_end(session, run_id=run.id, status=RunStatus.cancelled)

        attempt.write(
            {"status": RunStatus.cancelled, "finished_at": utcnow(), "lease_token": None},
            drop_checkpoints,
        )
        return RunStatus.cancelled.value
    return _finish(attempt, result, image_shape)


def _finish(
    attempt: Attempt,
    result: Any,
    image_shape: dict[str, Any] | None,
    *,
    stop_reason: str | None = None,
) -> str:
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
            # An image model decodes a picture the way its dataset's pictures were decoded.
            **({"image": image_shape} if image_shape else {}),
        },
        classes=_json_safe(model.classes),
        metrics={**metrics, "stop_reason": stop_reason or result.stop_reason},
        blob=blob,
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
    )

    def store_model(session: Session) -> None:
        # The fence was checked by this transaction's first statement.
        model_store.insert_model(session, model_row)
        run_store.set_model(session, run_id=run.id, model_id=model_row.id)
        run_store.trim_checkpoints_at_end(session, run_id=run.id, status=RunStatus.succeeded)

    attempt.write(
        {
            "status": RunStatus.succeeded,
            "finished_at": utcnow(),
            # Every epoch the model has had, a warm start's model's included.
            "epoch": int(model.epochs_trained),
            "fraction": 1.0,
            "eta_seconds": 0.0,
            "lease_token": None,
        },
        store_model,
    )
    return RunStatus.succeeded.value


def _json_safe(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))
