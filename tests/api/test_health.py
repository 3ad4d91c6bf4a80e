"""Health, readiness, version, the error envelope for framework errors, and 503 (not 500) when
the database is down."""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from api.app import create_app
from core.auth import create_api_key
from core.config import Settings
from store.session import Database, make_engine_for_url
from tests.api.conftest import bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# Nothing listens on port 1: connections are refused at once.
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"


def test_health_and_version(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "not_configured"},
    }
    version = client.get("/version").json()
    assert set(version) == {"version", "git_sha", "numpy", "python"}


def test_readyz_names_what_is_down(tmp_path: Path) -> None:
    def broker_down() -> None:
        raise ConnectionError("redis refused")

    settings = Settings(database_url=DEAD_POSTGRES, data_dir=tmp_path)
    app = create_app(settings, broker_check=broker_down)
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(settings.retry_after_seconds)
    error = response.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert error["details"]["unavailable"] == ["database", "broker"]


def test_database_down_is_503_with_retry_after(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=DEAD_POSTGRES, data_dir=tmp_path))
    response = TestClient(app).get("/v1/datasets", headers=bearer("dsk_0123456789ab_x"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_sqlite_busy_is_503(tmp_path: Path) -> None:
    """A write lock held past the busy timeout: 'database is locked' becomes 503."""
    import sqlite3

    from core.migrate import upgrade_to_head

    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    upgrade_to_head(url)
    db = Database(make_engine_for_url(url))
    with db.session() as session:
        key = create_api_key(session, "a")
    fast = Database(make_engine_for_url(url, busy_timeout_ms=50))
    holder = sqlite3.connect(tmp_path / "busy.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        client = TestClient(
            create_app(Settings(database_url=url, data_dir=tmp_path), database=fast)
        )
        response = client.delete(
            "/v1/datasets/00000000-0000-0000-0000-000000000000", headers=bearer(key)
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        fast.dispose()
        db.dispose()
    assert response.status_code == 503, response.text
    assert "retry-after" in response.headers


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nope", 404, "not_found"), ("PUT", "/v1/datasets", 405, "method_not_allowed")],
)
def test_framework_errors_use_the_envelope(
    client: TestClient, tenant_key: str, method: str, path: str, status: int, code: str
) -> None:
    # With a key: a /v1 request without one is answered 401 before routing.
    response = client.request(method, path, headers=bearer(tenant_key))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_openapi_documents_the_upload(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_request_returns_its_connection_before_the_response_starts(
    settings: Settings, db: Database, tenant_key: str
) -> None:
    """Otherwise a database that goes away between the response and the session's close makes
    the server drop the client's connection (seen under load in the fault tests)."""
    order: list[str] = []

    def checked_in(*_args: object) -> None:
        order.append("connection returned")

    app = create_app(settings, database=db)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_record(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                order.append("response started")
            await send(message)

        await app(scope, receive, send_and_record)

    event.listen(db.engine, "checkin", checked_in)
    try:
        for path in ("/v1/runs", "/v1/datasets"):
            order.clear()
            response = TestClient(recording).get(path, headers=bearer(tenant_key))
            assert response.status_code == 200
            # The key's lookup returns one too: every return comes before the response.
            assert order[-1] == "response started", (path, order)
            assert order.count("connection returned") >= 1, (path, order)
    finally:
        event.remove(db.engine, "checkin", checked_in)
