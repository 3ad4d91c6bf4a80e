"""Reads for progress streaming: where each watched run stands, in one query."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.tables import Run, RunStatus

# (epochs done, status): a change in either is news for whoever watches the run.
Mark = tuple[int, RunStatus]


def marks(session: Session, run_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Mark]:
    if not run_ids:
        return {}
    rows = session.execute(select(Run.id, Run.epoch, Run.status).where(Run.id.in_(run_ids)))
    return {run_id: (epoch, status) for run_id, epoch, status in rows}
