"""The API while its database is unreachable: 503 with Retry-After (never 500), and it recovers
by itself when the database comes back. The database sits behind a TCP proxy we switch off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from tests.e2e.helpers import wait_for
from tests.faults.harness import cluster, http
from tests.faults.proxy import TcpProxy
from tests.services import pg_host_port

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


@pytest.mark.timeout(60)
def test_database_down_is_503_then_recovers(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        host, port = pg_host_port()
        if host not in ("127.0.0.1", "localhost"):
            pytest.skip(f"the proxy forwards to loopback only; PostgreSQL is on {host}")
        proxy = TcpProxy(port)
        proxy.start()
        try:
            url = make_url(c.database_url).set(port=proxy.port)
            base = c.start_api(DESCENT_DATABASE_URL=url.render_as_string(hide_password=False))
            body = {"dataset_id": str(c.dataset_id), "spec": {"epochs": 2}}
            with http(base, c.key) as client:
                assert client.get("/v1/runs").status_code == 200
                proxy.stop()
                calls: list[tuple[str, str, Any]] = [
                    ("GET", "/v1/runs", None),
                    ("POST", "/v1/runs", body),
                    ("GET", f"/v1/datasets/{c.dataset_id}", None),
                    ("GET", "/readyz", None),
                ]
                for method, path, payload in calls:
                    response = client.request(method, path, json=payload)
                    assert response.status_code == 503, (path, response.text)
                    assert int(response.headers["Retry-After"]) >= 1
                    assert response.json()["error"]["code"]
                assert client.get("/healthz").status_code == 200  # alive, just not ready
                proxy.start()

                def recovered() -> bool:
                    try:
                        return client.get("/v1/runs").status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_for(recovered, timeout=20, what="the API to recover")
                assert client.get("/readyz").status_code == 200
                assert client.post("/v1/runs", json=body).status_code == 202
        finally:
            proxy.stop()
