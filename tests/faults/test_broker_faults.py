"""F4, F7, F8: the broker misbehaves (redelivery after the visibility timeout, a restart that
loses every message, a stopped server). Redis here is our own throwaway redis-server."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from store.tables import Run
from tests.e2e.helpers import wait_for
from tests.faults.harness import Cluster, cluster, dup_count, http, lost_count

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


@pytest.mark.timeout(90)
def test_f4_run_longer_than_visibility_timeout_trains_once(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        c.start_api()
        # Two pool children, so the redelivered copy is picked up while the first still trains.
        c.start_worker(concurrency=2, fault_visibility_timeout=1.5)
        run_id = c.submit(epochs=24)  # ~6 s, four times the visibility timeout
        assert c.wait_final([run_id], timeout=60) == {run_id: "succeeded"}
        log = (tmp_path / "worker-w1.log").read_text()
        received = sum(
            1 for line in log.splitlines() if "runs.train[" in line and "received" in line
        )
        # Redis did hand the message out again while the first attempt ran...
        assert received >= 2, log[-3000:]
        assert "'skipped'" in log
        # ...and only one attempt trained.
        run = c.run(run_id)
        events = c.events(run_id)
        assert run.attempts == 1 and len({e["token"] for e in events}) == 1
        assert dup_count(events) == 0
        assert c.history(run_id) == list(range(1, 25))


@pytest.mark.timeout(120)
def test_f7_redis_restart_without_persistence_resends_from_database(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        base = c.start_api()
        c.start_worker()
        run_ids = [c.submit(epochs=3) for _ in range(6)]
        c.wait_epoch(run_ids[0], 1, timeout=30)
        assert c.redis.queue_length() >= 3
        before = _server_run_id(c)
        c.redis.kill()  # every queued and unacked message is gone
        with http(base, c.key) as client:
            # While the broker is down: not ready (503 + Retry-After), and a submitted run is
            # still accepted (committed; the reconciler sends it once the broker is back).
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "Retry-After" in ready.headers
            spec = {"layers": [{"units": 8}], "epochs": 3, "batch_size": 16, "seed": 3}
            body = {"dataset_id": str(c.dataset_id), "spec": spec}
            late = client.post("/v1/runs", json=body)
            assert late.status_code == 202, late.text
            run_ids.append(late.json()["id"])
            time.sleep(1)
            c.redis.start()
            # A new server process with no persistence: nothing of the old queue survived. (The
            # queue itself cannot show it: the reconciler re-sends within its 0.5 s interval.)
            assert _server_run_id(c) != before

            def ready_again() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready_again, timeout=20, what="/readyz after the restart")

        statuses = c.wait_final(run_ids, timeout=90)
        events = c.events()
        lost, dup = lost_count(statuses), dup_count(events)
        print(f"F7: accepted={len(run_ids)} lost={lost} dup={dup}")
        assert lost == 0 and dup == 0
        assert set(statuses.values()) == {"succeeded"}
        for run_id in run_ids:
            assert c.history(run_id) == [1, 2, 3]


@pytest.mark.timeout(90)
def test_f8_redis_stopped_mid_run(tmp_path: Path) -> None:
    """SIGSTOP, not a crash: connections stay open and every broker call just waits. The run
    in progress keeps training (it needs only the database); a run submitted meanwhile is
    committed but reaches no worker until the server resumes."""
    with cluster(tmp_path) as c:
        c.start_api()
        # A free pool child: a message that got through would start at once.
        c.start_worker(concurrency=2)
        run_id = c.submit(epochs=20)
        c.wait_epoch(run_id, 2, timeout=30)
        returned: list[float] = []

        def submit_late() -> None:
            c.submit(name="late", epochs=2)
            returned.append(time.time())

        c.redis.pause()
        try:
            epoch_at_pause = max(e["epoch"] for e in c.events(run_id))
            submitter = threading.Thread(target=submit_late, daemon=True)
            submitter.start()
            late = str(wait_for(lambda: _run_named(c, "late"), timeout=10, what="the late run"))
            time.sleep(2.5)
            # The pause had an effect: the late run waits, committed but not delivered...
            assert (c.status(late), c.run(late).attempts) == ("queued", 0)
            assert submitter.is_alive() and not returned
            # ...while the run in progress kept committing epochs without the broker.
            assert max(e["epoch"] for e in c.events(run_id)) > epoch_at_pause
        finally:
            resumed_at = time.time()
            c.redis.resume()
        submitter.join(10)
        assert returned and returned[0] >= resumed_at
        assert c.wait_final([run_id, late], timeout=60) == {run_id: "succeeded", late: "succeeded"}
        started = c.run(late).started_at
        assert started is not None and started.timestamp() >= resumed_at
        events = c.events(run_id)
        assert dup_count(events) == 0
        assert c.run(run_id).attempts == 1 and len({e["token"] for e in events}) == 1
        assert c.history(run_id) == list(range(1, 21))


def _run_named(c: Cluster, name: str) -> uuid.UUID | None:
    assert c.db is not None
    with c.db.read_session() as session:
        return session.scalars(select(Run.id).where(Run.name == name)).one_or_none()


def _server_run_id(c: Cluster) -> str:
    client = redis.Redis.from_url(c.redis.url, socket_timeout=2)
    try:
        assert client.config_get("save")["save"] == "" and client.config_get("appendonly") == {
            "appendonly": "no"
        }
        return str(client.info("server")["run_id"])
    finally:
        client.close()
