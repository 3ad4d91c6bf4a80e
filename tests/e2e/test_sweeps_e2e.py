"""The issue's proof over real processes: uvicorn (API) and two ``celery worker`` processes on the
tests' Redis and a fresh PostgreSQL database. A 12-trial grid (learning rate x layers) on
digits, two trials at a time (the workers fill the slots as trials end), completes, and its
best trial is the best of the same 12 specs run as plain runs (same seeds, same numbers). The
same grid under ASHA stops at least half of the trials early, picks the same configuration and
trains at most half the epochs of the full grid."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.auth import create_api_key
from descent.processes import clean_env
from store.session import Database, make_engine_for_url
from tests.e2e.helpers import (
    API_APP,
    digits_csv,
    digits_split,
    free_port,
    process,
    uvicorn_argv,
    wait_for,
    wait_healthy,
    worker_argv,
)
from tests.services import redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

FINAL = ("succeeded", "failed", "cancelled")
EPOCHS = 18
BASE = {"epochs": EPOCHS, "batch_size": 32, "seed": 5, "optimizer": {"name": "adam"}}
# The fastest learning rate last: the winner comes late and must survive every rung (ASHA with
# 2 trials at a time passed 200 of 200 simulated arrival orders of these curves).
SPACE = {
    "optimizer.learning_rate": [0.003, 0.001, 0.01],
    "layers": [[{"units": 64}], [{"units": 32}], [{"units": 16}], [{"units": 8}]],
}
ASHA = {"type": "asha", "grace_epochs": 2, "reduction_factor": 3}


@pytest.fixture
def redis_db() -> str:
    """The tests' Redis, a database number of its own (nothing is flushed: it may be shared)."""
    return redis_url(8)


def _best_val_loss(http: httpx.Client, run_id: str) -> float:
    epochs = http.get(f"/v1/runs/{run_id}/history").json()["epochs"]
    return min(float(e["val_loss"]) for e in epochs)


def _sweep(http: httpx.Client, dataset: str, **extra: Any) -> dict[str, Any]:
    body = {"dataset_id": dataset, "spec": BASE, "metric": "val_loss", "max_parallel": 2,
            "search": {"method": "grid", "space": SPACE}, **extra}  # fmt: skip
    created = http.post("/v1/sweeps", json=body)
    assert created.status_code == 202, created.text

    def done() -> dict[str, Any] | None:
        sweep = http.get(f"/v1/sweeps/{created.json()['id']}").json()
        return sweep if sweep["status"] != "running" else None

    sweep = wait_for(done, timeout=240, what="the sweep to finish", interval=0.5)
    assert sweep["status"] == "succeeded", sweep
    assert len(sweep["trials"]) == 12 and {t["status"] for t in sweep["trials"]} == {"succeeded"}
    trial_runs = http.get(f"/v1/runs?sweep_id={sweep['id']}&limit=100").json()["items"]
    assert len(trial_runs) == 12 and all(r["attempts"] == 1 for r in trial_runs)
    return dict(sweep)


@pytest.mark.timeout(600)
def test_a_12_trial_digits_grid_on_two_workers_with_and_without_asha(
    fresh_postgres_url: str, redis_db: str, tmp_path: Path
) -> None:
    db = Database(make_engine_for_url(fresh_postgres_url))
    with db.session() as session:
        key = create_api_key(session, f"e2e-{uuid.uuid4().hex[:8]}")
    db.dispose()
    env = clean_env(
        DESCENT_DATABASE_URL=fresh_postgres_url,
        DESCENT_BROKER_URL=redis_db,
        DESCENT_DATA_DIR=str(tmp_path / "data"),
        DESCENT_RECONCILE_EVERY_SECONDS="2",
        DESCENT_MAX_CONCURRENT_RUNS_PER_TENANT="100",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def worker(n: int) -> list[str]:
        return worker_argv(f"--hostname=sweep{n}@%h")

    repo = Path(__file__).resolve().parents[2]
    X_train, _, y_train, _ = digits_split()
    with (
        process(worker(1), env=env, log=tmp_path / "worker1.log", cwd=repo),
        process(worker(2), env=env, log=tmp_path / "worker2.log", cwd=repo),
        process(uvicorn_argv(API_APP, port), env=env, log=tmp_path / "api.log", cwd=repo) as api,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
    ):
        wait_healthy(base, api, tmp_path / "api.log")
        files = {"file": ("digits.csv", digits_csv(X_train, y_train), "text/csv")}
        up = http.post("/v1/datasets", files=files)
        assert up.status_code == 201, up.text
        dataset = up.json()["id"]
        grid = _sweep(http, dataset)
        assert not any(t["stopped_early"] for t in grid["trials"])
        assert all(t["epochs_done"] == EPOCHS for t in grid["trials"])

        # The same specs as plain runs, trained by the same workers.
        plain: dict[str, dict[str, Any]] = {}
        for trial in grid["trials"]:
            spec = http.get(f"/v1/runs/{trial['run_id']}").json()["spec"]
            run = http.post("/v1/runs", json={"dataset_id": dataset, "spec": spec})
            assert run.status_code == 202, run.text
            plain[run.json()["id"]] = trial

        def plain_done() -> bool:
            statuses = [http.get(f"/v1/runs/{rid}").json()["status"] for rid in plain]
            return all(s in FINAL for s in statuses)

        wait_for(plain_done, timeout=240, what="the plain runs to finish", interval=0.5)
        values = {rid: _best_val_loss(http, rid) for rid in plain}
        best_plain = min(values, key=lambda rid: values[rid])
        assert grid["best"]["value"] == values[best_plain]
        assert grid["best"]["params"] == plain[best_plain]["params"]
        for rid, trial in plain.items():
            assert trial["best_value"] == values[rid]  # same seed, same numbers

        asha = _sweep(http, dataset, early_termination=ASHA)
        stopped = [t for t in asha["trials"] if t["stopped_early"]]
        epochs = sum(t["epochs_done"] for t in asha["trials"])
        print(f"ASHA: {len(stopped)} of 12 stopped early, {epochs} of {12 * EPOCHS} epochs")
        assert len(stopped) >= 6
        assert asha["best"]["params"] == grid["best"]["params"]
        assert epochs <= 12 * EPOCHS // 2
    # The slots were filled by the workers as trials ended, not left to the safety net.
    for n in (1, 2):
        assert "could not fill" not in (tmp_path / f"worker{n}.log").read_text()
