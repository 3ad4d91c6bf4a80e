"""F10, F11: cooperative cancel of a running and of a queued run (through the real API);
F12: time limits (the spec's max_runtime_seconds and Celery's per-attempt soft limit)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import cluster, dup_count, http

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


@pytest.mark.timeout(90)
def test_f10_f11_cancel_running_and_queued(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        base = c.start_api()
        worker = c.start_worker()
        running = c.submit(epochs=40)
        queued = c.submit(epochs=40)  # waits behind `running` (one pool child)
        after = c.submit(epochs=3)
        third = c.wait_epoch(running, 3, timeout=30)
        with http(base, c.key) as client:
            # F11: cancel the queued run before any worker took it.
            response = client.post(f"/v1/runs/{queued}/cancel")
            assert response.status_code == 202 and response.json()["status"] == "cancelled"
            # F10: cancel the running one.
            asked = time.time()
            response = client.post(f"/v1/runs/{running}/cancel")
            assert response.status_code == 202 and response.json()["status"] == "cancelling"
        assert c.wait_final([running], timeout=10) == {running: "cancelled"}
        stopped = time.time()
        assert stopped - asked < 2.0, stopped - asked
        events = c.events(running)
        # Nothing committed after the cancel beyond the epoch in flight when it was asked.
        assert max(e["epoch"] for e in events) <= third["epoch"] + 2
        assert all(e["t"] < asked + 0.5 for e in events)
        assert c.history(running) == list(range(1, max(e["epoch"] for e in events) + 1))
        run = c.run(running)
        assert run.model_id is None and run.lease_token is None

        # Cooperative: the pool child was not killed; it went on to train the next run.
        assert c.wait_final([after], timeout=30) == {after: "succeeded"}
        assert {e["pid"] for e in c.events(after)} == {third["pid"]}

        # Restart the worker (kill -9): no in-memory revoke list survives; the database flag
        # still keeps the cancelled queued run from ever executing.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        c.start_worker("w2")
        c.sender_resend(queued)
        last = c.submit(epochs=2)
        assert c.wait_final([last], timeout=40) == {last: "succeeded"}
        cancelled = c.run(queued)
        assert cancelled.status.value == "cancelled" and cancelled.attempts == 0
        assert c.events(queued) == [] and c.history(queued) == []
        assert dup_count(c.events()) == 0


@pytest.mark.timeout(120)
def test_f12_time_limits_never_leave_a_run_running(tmp_path: Path) -> None:
    with cluster(tmp_path, task_soft_time_limit_seconds=2, task_time_limit_seconds=4) as c:
        c.start_api()
        c.start_worker(concurrency=2)
        budget = c.submit(epochs=40, max_runtime_seconds=1.0)
        too_long = c.submit(epochs=40)  # ~10 s of training; each attempt gets 2 s

        statuses = c.wait_final([budget, too_long], timeout=100)
        # max_runtime_seconds: training stops at the budget and the partial model is kept.
        assert statuses[budget] == "succeeded"
        stopped = c.run(budget)
        assert 1 <= stopped.epoch < 40 and stopped.model_id is not None
        assert c.history(budget) == list(range(1, stopped.epoch + 1))
        # The Celery soft limit ends each attempt; it resumes from its checkpoint and, once
        # attempts are used up, fails with a clear reason instead of staying running.
        assert statuses[too_long] == "failed"
        run = c.run(too_long)
        assert run.error_code == "time_limit", (run.error_code, run.error_message)
        assert run.attempts == c.settings.max_attempts and run.lease_token is None
        events = c.events(too_long)
        assert dup_count(events) == 0
        epochs = [e["epoch"] for e in events]
        assert epochs == list(range(1, len(epochs) + 1))  # progress carried across attempts
        assert c.history(too_long) == epochs
