"""One worker attempt at one run: the claim, the lease token, and the fenced writes.

Every worker write matches on the lease token of its attempt, so an attempt that lost its lease
(reaped, reclaimed) changes nothing. No transaction stays open while the attempt trains.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from core.config import Settings
from core.runs.events import Publisher, no_publisher
from models import EpochEnd
from store import runs as run_store
from store.base import utcnow
from store.session import Database
from store.tables import Checkpoint, Run, RunEpoch, RunStatus

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


def epoch_row(run: Run, metrics: dict[str, Any]) -> RunEpoch:
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
class Attempt:
    """One worker attempt at one run: its lease token and the fenced writes it makes."""

    db: Database
    run: Run
    token: uuid.UUID
    settings: Settings
    started: float = field(default_factory=time.monotonic)
    first_epoch: int = 0  # the epoch this attempt starts after (its checkpoint's, or the start)
    # A warm start's epochs trained before this run: its epoch numbers count on from them.
    epochs_before: int = 0
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_poll: float = 0.0
    last_heartbeat: float = field(default_factory=time.monotonic)
    cancel_requested: bool = False
    lease_lost: bool = False
    # Tells the API processes that watch this run to look again (core.runs.events).
    publish: Publisher = no_publisher
    best_loss: float | None = None
    # A sweep trial under early termination: called in each epoch's fenced transaction, it
    # answers whether the trial goes on (None: no decision at this epoch). core.sweeps.asha.
    rung_judge: Callable[[Session, int, int], bool | None] | None = None
    last_epoch: int = 0  # the latest epoch completed (by this attempt or before it)
    # The epoch a rung decision stopped the trial at: training ends once it is reached.
    stop_at: int | None = None

    def __post_init__(self) -> None:
        # A resumed attempt replays the epochs after its checkpoint exactly, so the best so far
        # stays valid.
        self.best_loss = self.run.best_loss
        if self.run.stopped_early and self.run.rung is not None:
            self.stop_at = self.run.rung  # decided by an earlier attempt

    @property
    def stopped_early(self) -> bool:
        return self.stop_at is not None and self.last_epoch >= self.stop_at

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
        if "epoch" in values or "status" in values:  # news; a bare heartbeat is not
            self.publish(self.run.id)

    def should_stop(self) -> bool:
        """Polled between batches: a cheap read at most every cancel_poll_seconds."""
        if self.lease_lost or self.cancel_requested or self.stopped_early:
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
            # This run's share done, whatever epoch a warm start's numbering began at.
            "fraction": (e.epoch - self.epochs_before) / (e.epochs - self.epochs_before),
            "eta_seconds": round(per_epoch * remaining, 3),
            "latest_metrics": latest,
            "heartbeat_at": utcnow(),
        }
        loss = latest.get("val_loss", latest["train_loss"])
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss = loss
            values |= {"best_epoch": e.epoch, "best_loss": loss, "best_metrics": latest}
        checkpoint_bytes: bytes | None = None
        if (
            e.epoch < e.epochs
            and now - self.last_checkpoint >= self.settings.checkpoint_every_seconds
        ):
            checkpoint_bytes = e.state().to_bytes()
        row = epoch_row(self.run, e.metrics)
        verdict: list[bool | None] = [None]

        def extra(session: Session) -> None:
            run_store.insert_epoch(session, row)
            if self.rung_judge is not None:
                verdict[0] = self.rung_judge(session, e.epoch, e.epochs)
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
        self.last_epoch = e.epoch
        if verdict[0] is False:
            self.stop_at = e.epoch
        if checkpoint_bytes is not None:
            self.last_checkpoint = now


def claim(db: Database, run_id: uuid.UUID) -> tuple[Run, uuid.UUID] | None:
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


def fail(attempt: Attempt, code: str, message: str) -> str:
    """End the run failed. It keeps its latest checkpoint only (to inspect or resume), for
    ``failed_checkpoint_retention_seconds``: core.housekeeping deletes it after that."""

    def keep_latest(session: Session) -> None:
        run_store.trim_checkpoints_at_end(session, run_id=attempt.run.id, status=RunStatus.failed)

    attempt.write(
        {
            "status": RunStatus.failed,
            "error_code": code,
            "error_message": message[:2000],
            "finished_at": utcnow(),
            "lease_token": None,
        },
        keep_latest,
    )
    return RunStatus.failed.value
