"""S7 (BOLA): tenant B calling every endpoint that takes one of tenant A's ids gets the 404 a
random UUID gets, byte for byte; lists never show A's ids; A's objects do not change."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tests.security.conftest import Tenant

PREDICT = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}

# (method, path, id kind, json body)
ENDPOINTS: list[tuple[str, str, str, Any]] = [
    ("GET", "/v1/datasets/{}", "dataset_id", None),
    ("DELETE", "/v1/datasets/{}", "dataset_id", None),
    ("GET", "/v1/runs/{}", "run_id", None),
    ("GET", "/v1/runs/{}", "queued_run_id", None),
    ("GET", "/v1/runs/{}/history", "run_id", None),
    ("POST", "/v1/runs/{}/cancel", "queued_run_id", None),
    ("POST", "/v1/runs/{}/cancel", "run_id", None),
    ("GET", "/v1/models/{}", "model_id", None),
    ("GET", "/v1/models/{}/weights", "model_id", None),
    ("POST", "/v1/models/{}/predict", "model_id", PREDICT),
]


def snapshot(api: TestClient, a: Tenant) -> dict[str, Any]:
    """Everything A can see of its own objects."""
    h = a.headers
    out: dict[str, Any] = {
        "dataset": api.get(f"/v1/datasets/{a.dataset_id}", headers=h).json(),
        "datasets": api.get("/v1/datasets", headers=h).json(),
        "runs": api.get("/v1/runs", headers=h).json(),
        "model": api.get(f"/v1/models/{a.model_id}", headers=h).json(),
        "weights": api.get(f"/v1/models/{a.model_id}/weights", headers=h).content,
        "history": api.get(f"/v1/runs/{a.run_id}/history", headers=h).json(),
        "predict": api.post(f"/v1/models/{a.model_id}/predict", headers=h, json=PREDICT).json(),
    }
    for run_id in (a.run_id, a.queued_run_id):
        out[run_id] = api.get(f"/v1/runs/{run_id}", headers=h).json()
    return out


def _call(api: TestClient, method: str, path: str, key: str, body: Any) -> Any:
    return api.request(method, path, headers={"Authorization": f"Bearer {key}"}, json=body)


def test_foreign_ids_answer_like_random_ones(
    api: TestClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = snapshot(api, tenant_a)
    for method, template, kind, body in ENDPOINTS:
        foreign = _call(api, method, template.format(getattr(tenant_a, kind)), tenant_b.key, body)
        random = _call(api, method, template.format(uuid.uuid4()), tenant_b.key, body)
        where = f"{method} {template} with A's {kind}"
        assert foreign.status_code == 404, (where, foreign.text)
        assert foreign.content == random.content, where
        drop = {"content-length", "date"}
        assert {k: v for k, v in foreign.headers.items() if k not in drop} == {
            k: v for k, v in random.headers.items() if k not in drop
        }, where
        # ...and B's own object of the same kind is served (the 404 is not the route's default).
        own = _call(api, method, template.format(getattr(tenant_b, kind)), tenant_b.key, body)
        assert own.status_code != 404 or method == "DELETE", (where, own.text)
    assert snapshot(api, tenant_a) == before


def test_foreign_dataset_in_a_run_body_is_like_a_missing_one(
    api: TestClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for path in ("/v1/runs", "/v1/runs/validate"):
        # The body echoes the id sent; apart from it the answers are the same bytes.
        answers = {
            _call(api, "POST", path, tenant_b.key, {"dataset_id": ds}).content.replace(
                ds.encode(), b"<id>"
            )
            for ds in (tenant_a.dataset_id, str(uuid.uuid4()))
        }
        assert len(answers) == 1, answers
        assert b"dataset_not_found" in answers.pop()


def test_lists_never_show_foreign_ids(api: TestClient, tenant_a: Tenant, tenant_b: Tenant) -> None:
    a_ids = {tenant_a.dataset_id, tenant_a.run_id, tenant_a.queued_run_id, tenant_a.model_id}
    h = tenant_b.headers
    datasets = api.get("/v1/datasets", headers=h).json()["items"]
    assert [d["id"] for d in datasets] == [tenant_b.dataset_id]
    run_lists = [
        api.get("/v1/runs", headers=h).json()["items"],
        api.get("/v1/runs", headers=h, params={"dataset_id": tenant_a.dataset_id}).json()["items"],
        api.get("/v1/runs", headers=h, params={"status": "succeeded"}).json()["items"],
        api.get("/v1/runs", headers=h, params={"status": "queued"}).json()["items"],
    ]
    seen = {r["id"] for items in run_lists for r in items}
    seen |= {r["model_id"] for items in run_lists for r in items if r["model_id"]}
    seen |= {r["dataset_id"] for items in run_lists for r in items}
    assert seen == {tenant_b.run_id, tenant_b.queued_run_id, tenant_b.model_id, tenant_b.dataset_id}
    assert not seen & a_ids
    # Paging through one item at a time reaches only B's runs too.
    cursor, paged = None, []
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/runs", headers=h, params=params).json()
        paged += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(paged) == {tenant_b.run_id, tenant_b.queued_run_id}


def test_foreign_cursor_reveals_nothing(
    api: TestClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """A cursor taken from A's listing, replayed by B, yields only B's objects (or a 422)."""
    page = api.get("/v1/runs", headers=tenant_a.headers, params={"limit": 1}).json()
    assert page["next_cursor"]
    response = api.get("/v1/runs", headers=tenant_b.headers, params={"cursor": page["next_cursor"]})
    assert response.status_code in (200, 422)
    if response.status_code == 200:
        ids = {r["id"] for r in response.json()["items"]}
        assert ids <= {tenant_b.run_id, tenant_b.queued_run_id}
