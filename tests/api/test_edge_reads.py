"""The reads the edge answers (api.fast_routes) say exactly what FastAPI's own routes say: the
same status and the same bytes, on both backends, for every read route and its query forms;
a query the edge cannot take goes to FastAPI for its 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import middleware as edge_middleware
from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, dataset_id, sent, submit, trained

__all__ = ["api", "dataset_id", "sent", "trained"]


def _paths(trained: dict[str, Any]) -> list[str]:
    run, model, dataset = trained["id"], trained["model_id"], trained["dataset_id"]
    return [
        f"/v1/runs/{run}",
        f"/v1/models/{model}",
        f"/v1/datasets/{dataset}",
        f"/v1/runs/{run}/history",
        f"/v1/runs/{run}/history?since_epoch=2",
        f"/v1/runs/{run}/history?max_points=2",
        "/v1/runs",
        "/v1/runs?limit=1",
        "/v1/runs?status=succeeded",
        f"/v1/runs?dataset_id={dataset}",
        "/v1/datasets",
        "/v1/models",
        f"/v1/models?run_id={run}",
        f"/v1/models?dataset_id={dataset}",
        "/v1/runs/00000000-0000-0000-0000-000000000000",  # 404s too
        "/v1/models/00000000-0000-0000-0000-000000000000",
    ]


def test_edge_and_fastapi_answer_the_same(
    api: TestClient,
    tenant_key: str,
    dataset_id: str,
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = bearer(tenant_key)
    assert submit(api, tenant_key, dataset_id).status_code == 202  # a second run: two pages
    cursor = api.get("/v1/runs?limit=1", headers=headers).json()["next_cursor"]
    assert cursor
    paths = [*_paths(trained), f"/v1/runs?limit=1&cursor={cursor}"]
    edge = [api.get(path, headers=headers) for path in paths]
    routed: list[str] = []

    def no_edge(method: str, path: str) -> None:
        routed.append(path)
        return None

    monkeypatch.setattr(edge_middleware, "fast_route", no_edge)
    plain = [api.get(path, headers=headers) for path in paths]
    assert len(routed) == len(paths)  # the second round really went through FastAPI
    for path, a, b in zip(paths, edge, plain, strict=True):
        assert (a.status_code, a.content) == (b.status_code, b.content), path
        assert a.headers["content-type"] == b.headers["content-type"], path
    assert {r.status_code for r in edge} == {200, 404}
    first, second = (edge[paths.index(p)].json() for p in paths if "limit=1" in p)
    assert (
        [r["id"] for r in second["items"]] == [trained["id"]] != [r["id"] for r in first["items"]]
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/runs?limit=0", "limit"),
        ("/v1/runs?dataset_id=nope", "dataset_id"),
        ("/v1/models?limit=100000", "limit"),
        ("/v1/datasets?cursor=" + "x" * 300, "cursor"),
    ],
)
def test_a_query_the_edge_refuses_is_fastapis_422(
    api: TestClient, tenant_key: str, path: str, field: str
) -> None:
    response = api.get(path, headers=bearer(tenant_key))
    assert response.status_code == 422, response.text
    assert field in response.text


def test_a_long_poll_is_left_to_fastapi(
    api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    """wait_seconds on a finished run answers at once, through the FastAPI route."""
    response = api.get(
        f"/v1/runs/{trained['id']}?wait_seconds=5&after_epoch=0", headers=bearer(tenant_key)
    )
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
