"""Status changes made outside a worker are news too: the reconciler's requeue of a run whose
worker died (running -> queued) and a cancel through the API are published like a worker's
commits, so a stream following the run hears of them at once. Both polls are set to 60 s:
only the Redis wake-up can bring the news within the seconds allowed."""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from api.app import create_app
from core import runs
from core.config import Settings
from core.runs import lease
from store.base import utcnow
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import Sent, dataset_id, sent, submit, work
from tests.api.test_events_api import SLOW_SPEC, parse_sse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.redis
__all__ = ["dataset_id", "sent"]  # fixtures used by the tests below
QUICK = 10.0  # seconds: far below the 60 s polls


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    from tests.services import redis_url

    return settings.model_copy(
        update={
            "broker_url": redis_url(10),
            "events_poll_seconds": 60.0,
            "events_fallback_poll_seconds": 60.0,
        }
    )


@pytest.fixture
def api(redis_settings: Settings, db: Database, sent: Sent) -> TestClient:
    return TestClient(create_app(redis_settings, database=db, enqueue=sent))


def _follow(
    app: Any, key: str, run_id: str, actions: dict[str, Callable[[], None]]
) -> tuple[list[str], dict[str, float]]:
    """Stream the run's events to the end; the first time a status in ``actions`` arrives
    (and the app's Redis subscription is up), its action runs in a thread. Returns the
    statuses streamed and when each was first seen."""
    watch = app.state.run_watch
    seen: dict[str, float] = {}
    statuses: list[str] = []
    threads: list[threading.Thread] = []
    text = ""

    def act(action: Callable[[], None]) -> None:
        deadline = time.monotonic() + 10
        while not watch._subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    client = TestClient(app)  # no lifespan: the session's Database must not be disposed
    try:
        path = f"/v1/runs/{run_id}/events"
        with client.stream("GET", path, headers=bearer(key)) as response:
            for chunk in response.iter_text():
                text += chunk
                if "\n\n" not in chunk:
                    continue
                frames = parse_sse(text[: text.rfind("\n\n") + 2])
                statuses = [f["data"]["status"] for f in frames if f.get("event") == "status"]
                for status in statuses:
                    if status not in seen:
                        seen[status] = time.monotonic()
                        if status in actions:
                            thread = threading.Thread(target=act, args=(actions[status],))
                            thread.start()
                            threads.append(thread)
    finally:
        for thread in threads:
            thread.join()
    return statuses, seen


def test_a_requeue_by_the_reconciler_reaches_the_stream_at_once(
    api: TestClient, redis_settings: Settings, db: Database, tenant_key: str, dataset_id: str
) -> None:
    app = api.app
    run_id = submit(api, tenant_key, dataset_id, spec=SLOW_SPEC).json()["id"]
    # A worker claimed the run and died: running, its heartbeat going stale.
    assert lease.claim(db, uuid.UUID(run_id)) is not None
    reaped: list[float] = []

    def reap() -> None:
        later = utcnow() + timedelta(seconds=redis_settings.lease_seconds + 5)
        reaped.append(time.monotonic())
        assert runs.reap_stale_runs(db, settings=redis_settings, now=later) == [run_id]

    def train_again() -> None:
        assert work(db, redis_settings, run_id) == "succeeded"

    statuses, seen = _follow(app, tenant_key, run_id, {"running": reap, "queued": train_again})
    assert statuses == ["running", "queued", "running", "succeeded"]
    assert seen["queued"] - reaped[0] < QUICK


def test_a_cancel_reaches_the_stream_at_once(
    api: TestClient, tenant_key: str, dataset_id: str
) -> None:
    app = api.app
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    asked: list[float] = []

    def cancel() -> None:
        asked.append(time.monotonic())
        answer = TestClient(app).post(f"/v1/runs/{run_id}/cancel", headers=bearer(tenant_key))
        assert answer.status_code == 202 and answer.json()["status"] == "cancelled"

    statuses, seen = _follow(app, tenant_key, run_id, {"queued": cancel})
    assert statuses == ["queued", "cancelled"]
    assert seen["cancelled"] - asked[0] < QUICK
