"""F1, F2, F5: workers killed with SIGKILL (a pool child, a whole worker, a run that always
kills its worker). The reaper is the real one: the API process's reconciler loop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.faults.harness import cluster, dup_count, lost_count

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


@pytest.mark.timeout(90)
def test_f1_kill_pool_child_mid_epoch_resumes_exactly(tmp_path: Path) -> None:
    epochs = 10
    with cluster(tmp_path) as c:
        c.start_api()
        c.start_worker()
        run_id = c.submit(epochs=epochs)
        third = c.wait_epoch(run_id, 3, timeout=30)
        time.sleep(0.1)  # into the next epoch
        os.kill(third["pid"], signal.SIGKILL)

        assert c.wait_final([run_id], timeout=40) == {run_id: "succeeded"}
        run = c.run(run_id)
        assert run.attempts == 2 and run.lease_token is None
        assert c.history(run_id) == list(range(1, epochs + 1))
        events = c.events(run_id)
        assert dup_count(events) == 0
        assert len({e["token"] for e in events}) == 2
        # Resumed from the checkpoint of the last committed epoch: nothing recomputed.
        assert sorted(e["epoch"] for e in events) == list(range(1, epochs + 1))

        reference = c.reference(epochs=epochs)
        assert c.losses(run_id) == c.losses(reference)
        got, want = c.weights(run_id), c.weights(reference)
        assert got.keys() == want.keys()
        for name in want:
            assert np.array_equal(got[name], want[name]), name


@pytest.mark.timeout(120)
def test_f2_kill_whole_worker_with_runs_queued(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        c.start_api()
        worker = c.start_worker("a", concurrency=2)
        run_ids = [c.submit(epochs=4) for _ in range(10)]
        c.wait_epoch(run_ids[0], 2, timeout=30)
        # SIGKILL the main process and its pool children at once (the process group).
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        time.sleep(1)
        c.start_worker("b", concurrency=2)

        statuses = c.wait_final(run_ids, timeout=90)
        events = c.events()
        lost, dup = lost_count(statuses), dup_count(events)
        print(f"F2: accepted={len(run_ids)} lost={lost} dup={dup} statuses={statuses}")
        assert lost == 0 and dup == 0
        assert set(statuses.values()) == {"succeeded"}
        for run_id in run_ids:
            assert c.history(run_id) == [1, 2, 3, 4]
        # At least one run was interrupted and finished by a second attempt.
        assert max(c.run(r).attempts for r in run_ids) >= 2


@pytest.mark.timeout(120)
def test_f5_run_that_always_kills_its_worker_fails_worker_lost(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        c.start_api()
        c.start_worker(fault_exit_at_epoch=2, fault_exit_run_name="poison")
        poison = c.submit(name="poison", epochs=6)
        healthy = [c.submit(name="healthy", epochs=3) for _ in range(3)]

        statuses = c.wait_final([poison, *healthy], timeout=90)
        assert statuses[poison] == "failed"
        run = c.run(poison)
        assert run.error_code == "worker_lost"
        assert run.attempts == c.settings.max_attempts and run.lease_token is None
        # Each attempt resumed from the previous one's last checkpoint and died after one more
        # epoch; no epoch was committed twice; the worker kept serving the others.
        events = c.events(poison)
        assert len({e["token"] for e in events}) == c.settings.max_attempts
        assert [e["epoch"] for e in events] == [1, 2, 3, 4]
        assert dup_count(c.events()) == 0
        assert all(statuses[r] == "succeeded" for r in healthy)
        # A healthy run submitted after the poison run gave up still trains.
        late = c.submit(name="healthy", epochs=2)
        assert c.wait_final([late], timeout=30) == {late: "succeeded"}
