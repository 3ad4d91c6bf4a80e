"""Housekeeping: what nothing else removes. Temporary uploads left by an API process that died mid-
request, checkpoints of runs that ended (a failed run keeps its latest one for
``failed_checkpoint_retention_seconds``), and dashboard sign-ins past their expiry. It also
tends the running sweeps (core.sweeps.slots): a slot a trial left without filling it (the
reaper ended it, or its worker died first) is filled, and a sweep whose trials are all final
ends. Called by
every reconciler pass (core.runs.reconcile) and once when an API process starts; each function
is idempotent, so several API replicas may run it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from core.config import Settings
from core.sweeps import slots
from store import runs as run_store
from store import web_sessions as web_store
from store.base import utcnow
from store.session import Database

log = logging.getLogger(__name__)

# api/uploads.py spools each upload to <data_dir>/uploads/upload-<random>.part.
UPLOAD_GLOB = "upload-*.part"


def uploads_folder(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def sweep_stale_uploads(settings: Settings, *, now: float | None = None) -> list[Path]:
    """Remove temporary uploads untouched for ``stale_upload_seconds``. A live request writes
    its file as the body arrives and reads it back within the parse budget, so a file that old
    belongs to no request. Returns the files removed."""
    cutoff = (time.time() if now is None else now) - settings.stale_upload_seconds
    removed: list[Path] = []
    try:
        candidates = list(uploads_folder(settings).glob(UPLOAD_GLOB))
    except OSError:  # no folder yet (nothing uploaded), or unreadable: nothing to do
        return removed
    for path in candidates:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # its request (or another replica) removed it meanwhile
    if removed:
        log.info("housekeeping: removed %d stale upload file(s)", len(removed))
    return removed


def purge_expired_checkpoints(
    db: Database, settings: Settings, *, now: datetime | None = None
) -> int:
    """Delete checkpoints no run will resume from: any left on succeeded or cancelled runs, and
    a failed run's once ``failed_checkpoint_retention_seconds`` have passed since it ended.
    Returns how many were deleted."""
    now = now or utcnow()
    failed_before = now - timedelta(seconds=settings.failed_checkpoint_retention_seconds)
    with db.session() as session:
        deleted = run_store.delete_finished_checkpoints(session, failed_before=failed_before)
        session.commit()
    if deleted:
        log.info("housekeeping: deleted %d checkpoint(s) of finished runs", deleted)
    return deleted


def purge_expired_web_sessions(db: Database, *, now: datetime | None = None) -> int:
    with db.session() as session:
        deleted = web_store.delete_expired_web_sessions(session, now=now or utcnow())
        session.commit()
    return deleted


def housekeep(db: Database, settings: Settings) -> None:
    """Each sweep on its own: one failing (an unreadable uploads folder, a database hiccup)
    neither stops the others nor fails the caller, whose own work is done."""
    sweeps: list[tuple[str, Callable[[], object]]] = [
        ("upload sweep", lambda: sweep_stale_uploads(settings)),
        ("checkpoint purge", lambda: purge_expired_checkpoints(db, settings)),
        ("web session purge", lambda: purge_expired_web_sessions(db)),
        ("sweep slots", lambda: slots.tend_sweeps(db, settings)),
    ]
    for what, sweep in sweeps:
        try:
            sweep()
        except Exception as exc:
            log.warning("housekeeping: %s failed: %s", what, exc)
