"""GET /metrics on both backends: the Prometheus text parses; request counters move by exactly
the requests made, labelled by route template (never a raw id) and status; the latency
histogram counts them; runs by status and queue depth are the database's; epochs and predicted
rows are counted; the token guard; the database down answers the process metrics still.

The metrics directory is the pytest process's (claimed by the first app any test builds, kept
for the session) and shared by every test, so each test compares two scrapes."""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.app import create_app
from core import metrics
from core.config import Settings
from store.session import Database, make_engine_for_url
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, api, dataset_id, sent, submit, trained, work

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["api", "dataset_id", "sent", "trained"]

PREDICT = "/v1/models/{model_id}/predict"
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    return value(
        samples, "descent_http_requests_total", method=method, route=route, status=str(status)
    )


def latency_count(samples: Samples, method: str, route: str) -> float:
    return value(samples, "descent_http_request_duration_seconds_count", method=method, route=route)


def test_the_text_format_parses_with_every_family(client: TestClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families == {
        "descent_http_requests": "counter",
        "descent_http_request_duration_seconds": "histogram",
        "descent_epochs_trained": "counter",
        "descent_predicted_rows": "counter",
        "descent_database_up": "gauge",
        "descent_runs": "gauge",
        "descent_queue_depth": "gauge",
    }
    # Not in the OpenAPI document (API.md describes it).
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, tenant_key: str
) -> None:
    model_id = str(uuid.uuid4())
    before = scrape(client)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    # 404 from the route (no such model), 401 from the edge before routing (no key), 404 of a
    # path no route matches.
    assert client.get(f"/v1/models/{model_id}", headers=bearer(tenant_key)).status_code == 404
    assert client.post(f"/v1/models/{model_id}/predict", json={}).status_code == 401
    assert client.post(f"/v1/models/{model_id}/predict", json={}).status_code == 401
    assert client.get(f"/no/such/{model_id}").status_code == 404
    after = scrape(client)

    def moved(method: str, route: str, status: int) -> float:
        return requests(after, method, route, status) - requests(before, method, route, status)

    assert moved("GET", "/healthz", 200) == 3
    assert moved("GET", "/v1/models/{model_id}", 404) == 1
    assert moved("POST", PREDICT, 401) == 2
    assert moved("GET", metrics.UNMATCHED, 404) == 1
    assert moved("GET", "/metrics", 200) == 1  # the first scrape
    routes = {dict(labels)["route"] for name, labels in after if "route" in dict(labels)}
    assert not any(model_id in route for route in routes), routes

    # One latency observation per request, in the histogram of its route.
    for method, route, n in (("GET", "/healthz", 3), ("POST", PREDICT, 2)):
        assert latency_count(after, method, route) - latency_count(before, method, route) == n
        inf = "descent_http_request_duration_seconds_bucket"
        grew = value(after, inf, method=method, route=route, le="+Inf") - value(
            before, inf, method=method, route=route, le="+Inf"
        )
        assert grew == n
        total = "descent_http_request_duration_seconds_sum"
        assert value(after, total, method=method, route=route) > value(
            before, total, method=method, route=route
        )


def test_an_unhandled_error_is_counted_as_500(settings: Settings, db: Database) -> None:
    app = create_app(settings, database=db)

    @app.get("/boom-for-metrics")
    def boom() -> None:
        raise RuntimeError("a bug")

    client = TestClient(app, raise_server_exceptions=False)
    before = scrape(client)
    assert client.get("/boom-for-metrics").status_code == 500
    after = scrape(client)
    moved = requests(after, "GET", "/boom-for-metrics", 500)
    assert moved - requests(before, "GET", "/boom-for-metrics", 500) == 1


def test_runs_by_status_and_epochs_trained(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    ids = [submit(api, tenant_key, dataset_id).json()["id"] for _ in range(3)]
    samples = scrape(api)
    assert value(samples, "descent_runs", status="queued") == 3
    assert value(samples, "descent_queue_depth") == 3
    assert value(samples, "descent_runs", status="succeeded") == 0
    assert value(samples, "descent_database_up") == 1

    # The in-process worker trains one run (core.runs.training, as the Celery task does).
    assert work(db, settings, ids[0]) == "succeeded"
    after = scrape(api)
    assert value(after, "descent_runs", status="queued") == 2
    assert value(after, "descent_runs", status="succeeded") == 1
    assert value(after, "descent_queue_depth") == 2
    trained_epochs = value(after, "descent_epochs_trained_total") - value(
        samples, "descent_epochs_trained_total"
    )
    assert trained_epochs == SPEC["epochs"]
    # Every status is present, zero or not.
    statuses = {dict(labels)["status"] for name, labels in after if name == "descent_runs"}
    assert statuses == {
        *("pending", "queued", "running", "cancelling"),  # pending: sweep trials waiting
        *("succeeded", "failed", "cancelled"),
    }


def test_predicted_rows_counter(client: TestClient) -> None:
    before = scrape(client)
    metrics.record_predicted_rows(7)
    metrics.record_predicted_rows(0)
    after = scrape(client)
    moved = value(after, "descent_predicted_rows_total") - value(
        before, "descent_predicted_rows_total"
    )
    assert moved == 7


def test_predict_over_http_counts_its_rows(api: TestClient, tenant_key: str, trained: dict) -> None:
    rows = [[0.0, 0.0, 0.0, 0.0], [2.0, -1.5, 1.0, 0.0], [4.0, -3.0, 2.0, 0.0]] * 5
    before = scrape(api)
    response = api.post(
        f"/v1/models/{trained['model_id']}/predict",
        headers=bearer(tenant_key),
        json={"inputs": rows},
    )
    assert response.status_code == 200, response.text
    after = scrape(api)
    assert requests(after, "POST", PREDICT, 200) - requests(before, "POST", PREDICT, 200) == 1
    moved = value(after, "descent_predicted_rows_total") - value(
        before, "descent_predicted_rows_total"
    )
    assert moved == len(rows)


def test_the_token_guard(settings: Settings, db: Database, tenant_key: str) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("s3cret-token")})
    client = TestClient(create_app(guarded, database=db))
    for headers in (
        None,
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic s3cret-token"},
        {"Authorization": "Bearer s3cret-tokenX"},
        bearer(tenant_key),  # an API key is not the metrics token
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    samples = scrape(client, {"Authorization": "Bearer s3cret-token"})
    assert requests(samples, "GET", "/metrics", 401) >= 5  # the refusals are counted too
    assert scrape(client, {"Authorization": "bearer s3cret-token"})


def test_without_a_token_it_is_open(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200


def test_database_down_still_answers_the_process_metrics(tmp_path: Path) -> None:
    settings = Settings(database_url=DEAD_POSTGRES, data_dir=tmp_path)
    dead = Database(make_engine_for_url(DEAD_POSTGRES))
    try:
        samples = scrape(TestClient(create_app(settings, database=dead)))
    finally:
        dead.dispose()
    assert value(samples, "descent_database_up") == 0
    assert not any(name == "descent_runs" for name, _ in samples)
    assert any(name == "descent_http_requests_total" for name, _ in samples)


def test_a_directory_is_wiped_only_when_no_live_process_holds_it(tmp_path: Path) -> None:
    """The claim's lock, with open file descriptions standing in for processes (flock locks
    belong to them, so two in one process conflict as two processes would)."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"old")
    (directory / "notes.txt").write_text("not ours")
    first = metrics._lock_and_maybe_wipe(directory)  # nobody holds it: wiped
    try:
        assert sorted(p.name for p in directory.iterdir()) == [".lock", "notes.txt"]
        (directory / "counter_4343.db").write_bytes(b"a live sibling's")
        second = metrics._lock_and_maybe_wipe(directory)  # first still holds it: kept
        os.close(second)
        assert (directory / "counter_4343.db").exists()
    finally:
        os.close(first)
    third = metrics._lock_and_maybe_wipe(directory)  # every holder gone: wiped
    os.close(third)
    assert not (directory / "counter_4343.db").exists()
    assert (directory / "notes.txt").exists()
