"""Pushed progress in process, on SQLite and PostgreSQL: ``GET /v1/runs/{id}/events`` (SSE) and
the long poll ``GET /v1/runs/{id}?wait_seconds=``. The worker is ``run_training`` in a thread,
committing epochs while the stream is open; tests/e2e covers real processes."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import fastapi.routing
import orjson
import pytest

from api.app import create_app
from core.config import Settings
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, Sent, dataset_id, sent, submit, work

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["dataset_id", "sent"]  # fixtures used by the tests below

SLOW_SPEC = {**SPEC, "epochs": 12}


@pytest.fixture
def api(settings: Settings, db: Database, sent: Sent) -> TestClient:
    fast = settings.model_copy(update={"events_poll_seconds": 0.05})
    return TestClient(create_app(fast, database=db, enqueue=sent))


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Frames of an event stream: {"event", "id", "data"} (data decoded), or {"comment"}."""
    frames: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                frame["comment"] = value
            elif field == "data":
                frame["data"] = orjson.loads(value)
            else:
                frame[field] = value
        frames.append(frame)
    return frames


def _stream(api: TestClient, key: str, run_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    with api.stream("GET", f"/v1/runs/{run_id}/events", headers=bearer(key), **kwargs) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(r.read().decode())


def _epochs(frames: list[dict[str, Any]]) -> list[int]:
    numbers = [f["data"]["epoch"] for f in frames if f.get("event") == "epoch"]
    assert [int(f["id"]) for f in frames if f.get("event") == "epoch"] == numbers
    return numbers


def _statuses(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["status"] for f in frames if f.get("event") == "status"]


def test_finished_run_replays_every_epoch_then_its_status_and_closes(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    assert work(db, settings, run_id) == "succeeded"
    frames = _stream(api, tenant_key, run_id)
    assert _epochs(frames) == [1, 2, 3, 4]
    history = api.get(f"/v1/runs/{run_id}/history", headers=bearer(tenant_key)).json()
    assert [f["data"] for f in frames if f.get("event") == "epoch"] == history["epochs"]
    final = frames[-1]
    assert final["event"] == "status" and final["data"]["status"] == "succeeded"
    model_id = api.get(f"/v1/runs/{run_id}", headers=bearer(tenant_key)).json()["model_id"]
    assert final["data"]["model_id"] == model_id and final["data"]["error"] is None


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"headers_extra": {"Last-Event-ID": "2"}}, [3, 4]),
        ({"params": {"after_epoch": 3}}, [4]),
        ({"headers_extra": {"Last-Event-ID": "4"}}, []),
        # A browser's EventSource reconnecting: its URL's after_epoch, and the later id it saw.
        ({"params": {"after_epoch": 1}, "headers_extra": {"Last-Event-ID": "3"}}, [4]),
        ({"params": {"after_epoch": 3}, "headers_extra": {"Last-Event-ID": "1"}}, [4]),
    ],
    ids=["last-event-id", "after_epoch", "all-seen", "reconnect", "later-query"],
)
def test_resume_point_replays_only_what_follows(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    db: Database,
    settings: Settings,
    how: dict[str, Any],
    expected: list[int],
) -> None:
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    assert work(db, settings, run_id) == "succeeded"
    headers = {**bearer(tenant_key), **how.get("headers_extra", {})}
    path = f"/v1/runs/{run_id}/events"
    with api.stream("GET", path, headers=headers, params=how.get("params")) as response:
        frames = parse_sse(response.read().decode())
    assert _epochs(frames) == expected
    assert _statuses(frames) == ["succeeded"]


def _stream_while(
    client: TestClient, run_id: str, key: str, train: Callable[[], None], opened: threading.Event
) -> str:
    """The run's whole event stream, read while ``train`` runs in a thread; ``opened`` is set
    once the stream has sent its first status (so the training starts on a watched run)."""
    worker = threading.Thread(target=train)
    worker.start()
    text = ""
    try:
        with client.stream("GET", f"/v1/runs/{run_id}/events", headers=bearer(key)) as r:
            for chunk in r.iter_text():
                text += chunk
                if "event: status" in text:
                    opened.set()
    finally:
        opened.set()
        worker.join()
    return text


def test_live_stream_sees_each_epoch_once_in_order_while_a_worker_trains(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    run_id = submit(api, tenant_key, dataset_id, spec=SLOW_SPEC).json()["id"]
    opened = threading.Event()  # the worker starts once the stream has said "queued"

    def train_when_watched() -> None:
        opened.wait(timeout=30)
        work(db, settings, run_id)

    text = _stream_while(api, run_id, tenant_key, train_when_watched, opened)
    frames = parse_sse(text)
    assert _epochs(frames) == list(range(1, 13))
    # The stream opened on a queued run and saw it start and end.
    assert _statuses(frames) == ["queued", "running", "succeeded"]
    # Status news came in order with the epochs: running before the first epoch.
    kinds = [f.get("event") for f in frames if "event" in f]
    assert kinds.index("epoch") > kinds.index("status")


def test_stream_errors_are_plain_http_answers(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str
) -> None:
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    foreign = api.get(f"/v1/runs/{run_id}/events", headers=bearer(other_key))
    missing = api.get(
        f"/v1/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}/events", headers=bearer(other_key)
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert api.get(f"/v1/runs/{run_id}/events").status_code == 401
    bad = api.get(
        f"/v1/runs/{run_id}/events", headers={**bearer(tenant_key), "Last-Event-ID": "soon"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "Last-Event-ID"


def test_long_poll_waits_for_news_or_the_time_limit(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    run_id = submit(api, tenant_key, dataset_id, spec=SLOW_SPEC).json()["id"]
    headers = bearer(tenant_key)
    # Nothing happens: the answer comes after the wait, with the run as it is.
    started = time.monotonic()
    quiet = api.get(f"/v1/runs/{run_id}", headers=headers, params={"wait_seconds": 0.6})
    assert time.monotonic() - started >= 0.55
    assert quiet.json()["status"] == "queued"
    # An epoch arrives during the wait: the answer comes with it, long before the limit.
    worker = threading.Timer(0.3, work, args=(db, settings, run_id))
    worker.start()
    try:
        started = time.monotonic()
        news = api.get(
            f"/v1/runs/{run_id}", headers=headers, params={"wait_seconds": 30, "after_epoch": 0}
        )
        waited = time.monotonic() - started
    finally:
        worker.join()
    assert news.status_code == 200 and news.json()["progress"]["epoch"] >= 1
    assert waited < 15
    # A final run answers at once.
    started = time.monotonic()
    done = api.get(f"/v1/runs/{run_id}", headers=headers, params={"wait_seconds": 30})
    assert done.json()["status"] == "succeeded" and time.monotonic() - started < 5


@pytest.mark.parametrize(
    "params", [{"wait_seconds": 61}, {"wait_seconds": -1}, {"after_epoch": -1}]
)
def test_long_poll_parameters_are_bounded(
    api: TestClient, tenant_key: str, dataset_id: str, params: dict[str, Any]
) -> None:
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    response = api.get(f"/v1/runs/{run_id}", headers=bearer(tenant_key), params=params)
    assert response.status_code == 422


def test_openapi_publishes_the_training_spec(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    spec = schemas["TrainingSpec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["epochs"]["default"] == 20
    optimizer = schemas["OptimizerSpec"]["properties"]["name"]
    assert optimizer["enum"] == ["sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad"]
    ref = {"allOf": [{"$ref": "#/components/schemas/TrainingSpec"}]}
    for model in ("RunIn", "RunOut", "ValidateOut"):
        assert schemas[model]["properties"]["spec"].items() >= ref.items(), model
    events = document["paths"]["/v1/runs/{run_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]


def test_a_quiet_stream_sends_keep_alive_comments(
    api: TestClient, tenant_key: str, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued run with no worker: nothing to say, so the stream says ``: ping`` (every 15 s
    in production; FastAPI's interval, patched here to a fraction of a second)."""
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.2)
    run_id = submit(api, tenant_key, dataset_id).json()["id"]
    text = ""
    started = time.monotonic()
    with api.stream("GET", f"/v1/runs/{run_id}/events", headers=bearer(tenant_key)) as r:
        for chunk in r.iter_text():
            text += chunk
            if text.count(": ping") >= 2 or time.monotonic() - started > 20:
                break
    frames = parse_sse(text)
    assert frames[0]["event"] == "status" and frames[0]["data"]["status"] == "queued"
    assert [f for f in frames[1:] if "comment" not in f] == []
    assert sum(f.get("comment") == "ping" for f in frames) >= 2
    assert time.monotonic() - started < 10


@pytest.mark.redis
def test_news_arrives_through_redis_before_the_poll_would_find_it(
    settings: Settings, db: Database, sent: Sent, tenant_key: str, dataset_id: str
) -> None:
    """With Redis the worker's commits wake the stream at once: with both polls set to 60 s,
    a whole run (three status changes and 12 epochs) still streams within seconds."""
    from tests.services import redis_url

    redis = settings.model_copy(
        update={
            "broker_url": redis_url(10),
            "events_poll_seconds": 60.0,
            "events_fallback_poll_seconds": 60.0,
        }
    )
    app = create_app(redis, database=db, enqueue=sent)
    slow_poll = TestClient(app)
    run_id = submit(slow_poll, tenant_key, dataset_id, spec=SLOW_SPEC).json()["id"]
    watch = app.state.run_watch
    opened = threading.Event()
    took: list[float] = []

    def train_when_subscribed() -> None:
        opened.wait(timeout=30)
        # The subscription is made by the stream's first look; news before it would be lost.
        deadline = time.monotonic() + 10
        while not watch._subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        work(db, redis, run_id)
        took.append(started)

    text = _stream_while(slow_poll, run_id, tenant_key, train_when_subscribed, opened)
    streamed = time.monotonic() - took[0]
    frames = parse_sse(text)
    assert _epochs(frames) == list(range(1, 13))
    assert _statuses(frames) == ["queued", "running", "succeeded"]
    assert streamed < 15, f"{streamed:.1f} s: woken by the 60 s poll, not by Redis"
