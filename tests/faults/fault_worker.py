"""A test-only Celery app for the fault tests: the production app (``worker.app.create_celery``)
plus fault hooks switched on by ``FAULT_*`` environment variables. Nothing in the production
code paths reads these variables; only ``celery -A tests.faults.fault_worker worker`` does.

- ``FAULT_TRACE``: file to append one JSON line per committed epoch (pid, run, token, epoch,
  time): the history the lost/dup checks read.
- ``FAULT_BATCH_SLEEP``: seconds to sleep between batches, so an epoch takes a known wall time
  without burning the shared CPUs.
- ``FAULT_EXIT_AT_EPOCH`` (+ ``FAULT_EXIT_RUN_NAME``): ``os._exit`` the pool child after it
  committed an epoch >= that one, for runs with that name: a run that kills every attempt.
- ``FAULT_VISIBILITY_TIMEOUT``: a short Redis visibility timeout (and a fast restore scan).

Each trace line also carries ``verdict``: the ASHA rung decision committed with that epoch
(True goes on, False stops, None no decision), so a test can count the decisions made.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from sqlalchemy.orm import Session

from core.runs import lease
from models import EpochEnd
from worker.app import create_celery

celery_app = create_celery()

_trace = os.environ.get("FAULT_TRACE")
_batch_sleep = float(os.environ.get("FAULT_BATCH_SLEEP", "0") or 0)
_exit_at = int(os.environ.get("FAULT_EXIT_AT_EPOCH", "0") or 0)
_exit_name = os.environ.get("FAULT_EXIT_RUN_NAME")
_visibility = float(os.environ.get("FAULT_VISIBILITY_TIMEOUT", "0") or 0)

if _visibility > 0:
    options: dict[str, Any] = dict(celery_app.conf.broker_transport_options)
    options.update(
        visibility_timeout=_visibility, unacked_restore_interval=1, unacked_restore_throttle=1
    )
    celery_app.conf.broker_transport_options = options

_original_on_epoch = lease.Attempt.on_epoch
_original_should_stop = lease.Attempt.should_stop


def _record(attempt: lease.Attempt, e: EpochEnd, verdict: bool | None) -> None:
    if _trace:
        line = {
            "pid": os.getpid(),
            "run": str(attempt.run.id),
            "token": str(attempt.token),
            "attempt": attempt.run.attempts,
            "epoch": e.epoch,
            "verdict": verdict,
            "t": time.time(),
        }
        fd = os.open(_trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def on_epoch(self: lease.Attempt, e: EpochEnd) -> None:
    judge = self.rung_judge
    verdicts: list[bool | None] = [None]
    if judge is not None:

        def judged(session: Session, epoch: int, epochs: int) -> bool | None:
            verdicts[0] = judge(session, epoch, epochs)
            return verdicts[0]

        self.rung_judge = judged
    try:
        _original_on_epoch(self, e)  # commits (fenced); raises LeaseLost if the lease is gone
    finally:
        self.rung_judge = judge
    _record(self, e, verdicts[0])
    if _exit_at and e.epoch >= _exit_at and (_exit_name is None or self.run.name == _exit_name):
        os._exit(17)


def should_stop(self: lease.Attempt) -> bool:
    if _batch_sleep:
        time.sleep(_batch_sleep)
    return _original_should_stop(self)


lease.Attempt.on_epoch = on_epoch  # type: ignore[method-assign]
lease.Attempt.should_stop = should_stop  # type: ignore[method-assign]
