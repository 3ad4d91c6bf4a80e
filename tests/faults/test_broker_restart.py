"""F7b: Redis restarts three times while one run trains, and no worker dies. The run must not
notice: one attempt, no error, no stall of a lease period, weights bit-identical to a run nobody
disturbed.

With ``worker_cancel_long_running_tasks_on_connection_loss`` on, Celery terminated the task on
every reconnect ("cannot be acknowledged after a connection loss ... Terminating it instead"):
each restart cost an attempt and a lease-period stall, and the third failed the run
``worker_lost``. (A redelivered copy of a held run's message is skipped without charging an
attempt: F4 in test_broker_faults.py.)"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.helpers import wait_for
from tests.faults.harness import Cluster, cluster, dup_count

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

RESTARTS = 3
EPOCHS = 48  # ~0.25 s an epoch: ~12 s, room for three restarts and the reconnects
LOST = "Connection to broker lost"
CONNECTED = "Connected to redis://"


def _log(c: Cluster) -> str:
    return (c.tmp / "worker-w1.log").read_text()


def _received(text: str) -> int:
    return sum(1 for line in text.splitlines() if "runs.train[" in line and "received" in line)


def _next_epoch(c: Cluster, run_id: str) -> None:
    """Wait for one more committed epoch of the run: it is still training."""
    c.wait_epoch(run_id, max(e["epoch"] for e in c.events(run_id)) + 1, timeout=10)


@pytest.mark.timeout(120)
def test_redis_restarts_cost_a_run_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        c.start_api()  # its reconciler is the production reaper: it must find nothing to reap
        c.start_worker()
        run_id = c.submit(epochs=EPOCHS)
        reference = c.reference(epochs=EPOCHS)
        c.wait_epoch(run_id, 2, timeout=30)

        pids = [c.redis.pid]
        for n in range(1, RESTARTS + 1):
            c.redis.kill()
            c.redis.start()  # empty: no RDB, no AOF
            pids.append(c.redis.pid)

            def reconnected(n: int = n) -> bool:
                text = _log(c)
                return text.count(LOST) >= n and text.count(CONNECTED) >= n + 1

            wait_for(reconnected, timeout=20, what=f"the worker to reconnect ({n})")
            _next_epoch(c, run_id)
            # Still the first attempt, still training (not reaped, not restarted).
            assert (c.status(run_id), c.run(run_id).attempts) == ("running", 1)
        assert len(set(pids)) == RESTARTS + 1, pids

        assert c.wait_final([run_id], timeout=60) == {run_id: "succeeded"}
        text = _log(c)
        assert "Terminating it instead" not in text
        # The restarted servers came back empty: nothing was delivered a second time.
        assert _received(text) == 1
        run = c.run(run_id)
        events = c.events(run_id)
        assert (run.attempts, run.error_code) == (1, None)
        assert len({e["token"] for e in events}) == 1 and dup_count(events) == 0
        assert c.history(run_id) == list(range(1, EPOCHS + 1))

        # No stall: consecutive committed epochs never lie a lease period apart.
        times = sorted(e["t"] for e in events)
        gap = max(b - a for a, b in itertools.pairwise(times))
        print(f"F7b: {RESTARTS} restarts, attempts={run.attempts}, largest epoch gap {gap:.2f}s")
        assert gap < c.settings.lease_seconds, gap

        mine, theirs = c.weights(run_id), c.weights(reference)
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            assert mine[name].dtype == theirs[name].dtype, name
            assert mine[name].tobytes() == theirs[name].tobytes(), name
        assert np.array_equal(c.losses(run_id), c.losses(reference))
