"""Runs, their per-epoch history and checkpoints. SQL only; never commits.

Phase 1 holds what the dataset service and the schema tests need; the claim / heartbeat /
fenced writes of the worker come with core.runs.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, undefer

from store.tables import ACTIVE_RUN_STATUSES, Checkpoint, Run, RunEpoch


def insert_run(session: Session, run: Run) -> Run:
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
    return session.scalars(
        select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id)
    ).one_or_none()


def active_run_ids_for_dataset(
    session: Session, *, tenant_id: uuid.UUID, dataset_id: uuid.UUID
) -> list[uuid.UUID]:
    """Runs that still read the dataset (queued, running or cancelling)."""
    return list(
        session.scalars(
            select(Run.id)
            .where(
                Run.tenant_id == tenant_id,
                Run.dataset_id == dataset_id,
                Run.status.in_(ACTIVE_RUN_STATUSES),
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
    session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID, since_epoch: int = 0
) -> list[RunEpoch]:
    return list(
        session.scalars(
            select(RunEpoch)
            .where(
                RunEpoch.tenant_id == tenant_id,
                RunEpoch.run_id == run_id,
                RunEpoch.epoch > since_epoch,
            )
            .order_by(RunEpoch.epoch)
        )
    )


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
