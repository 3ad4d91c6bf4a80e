"""A sweep under faults: kill -9 of a worker holding a trial, then kill -9 of the API and a new
API process. The sweep must finish with every trial ended, no epoch trained twice, the killed
trial resumed (two attempts), and each ASHA rung decision committed once and kept."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import wait_for
from tests.faults.harness import cluster, dup_count, http

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

EPOCHS = 8
SPACE = {
    "optimizer.learning_rate": [0.05, 0.01, 0.002],
    "layers": [[{"units": 8}], [{"units": 2}]],
}


@pytest.mark.timeout(150)
def test_a_sweep_survives_a_killed_worker_and_a_restarted_api(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        base = c.start_api()
        first_api = c.children[-1]
        doomed = c.start_worker("doomed")
        c.start_worker("steady")
        body = {
            "dataset_id": str(c.dataset_id),
            "spec": {"epochs": EPOCHS, "batch_size": 16, "seed": 3, "optimizer": {"name": "adam"}},
            "search": {"method": "grid", "space": SPACE},
            "metric": "val_loss",
            "max_parallel": 2,
            "early_termination": {"type": "asha", "grace_epochs": 2, "reduction_factor": 2},
        }
        with http(base, c.key) as client:
            created = client.post("/v1/sweeps", json=body)
        assert created.status_code == 202, created.text
        sweep_id = created.json()["id"]

        # kill -9 the doomed worker (main process and pool child) just after its trial committed
        # an epoch, so the trial is mid-training when it dies.
        def doomed_epoch() -> dict[str, Any] | None:
            mine = [e for e in c.events() if os.getpgid(e["pid"]) == doomed.pid and e["epoch"] >= 1]
            return mine[0] if mine else None

        hit = wait_for(doomed_epoch, timeout=40, what="a doomed worker's epoch", interval=0.02)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
        # The API dies too; a new one (a new reconciler, the reaper) takes over.
        os.killpg(first_api.pid, signal.SIGKILL)
        first_api.wait(10)
        base = c.start_api()
        c.start_worker("replacement")

        with http(base, c.key) as client:

            def finished() -> dict[str, Any] | None:
                sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
                return sweep if sweep["status"] != "running" else None

            sweep = wait_for(finished, timeout=100, what="the sweep to finish", interval=0.3)
        assert sweep["status"] == "succeeded", sweep
        trials = sweep["trials"]
        assert len(trials) == 6 and {t["status"] for t in trials} == {"succeeded"}

        events = c.events()
        assert dup_count(events) == 0  # no epoch trained twice, no two attempts at once
        hit_run = hit["run"]
        assert c.run(hit_run).attempts == 2  # the killed trial was resumed, not lost
        assert all(c.run(t["run_id"]).attempts == 1 for t in trials if t["run_id"] != hit_run)

        # Each rung decision was committed once, and the run keeps the one that was made.
        decisions = Counter((e["run"], e["epoch"]) for e in events if e["verdict"] is not None)
        assert decisions and max(decisions.values()) == 1
        stopped = 0
        for trial in trials:
            run = c.run(trial["run_id"])
            verdicts = {e["epoch"]: e["verdict"] for e in events if e["run"] == trial["run_id"]}
            made = {epoch: v for epoch, v in verdicts.items() if v is not None}
            history = c.history(trial["run_id"])
            assert history == list(range(1, len(history) + 1))  # each epoch once, in order
            if run.stopped_early:
                stopped += 1
                assert run.rung is not None and made[run.rung] is False
                assert history[-1] == run.rung and trial["epochs_done"] == run.rung
            else:
                assert history[-1] == EPOCHS and all(made.values())
        assert 1 <= stopped < len(trials)
        print(f"sweep faults: killed trial {hit_run} at epoch {hit['epoch']}, stopped={stopped}")
