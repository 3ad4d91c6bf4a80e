"""The model registry over HTTP, on both backends: names per tenant, versions 1, 2, 3, aliases
set, moved and moved back (a rollback) with every move kept, predict by alias and by version
answering as model predict does (plus name and version), and the same 404s for other tenants."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from api.app import create_app
from core.config import Settings
from core.registry import RESOLVE_FRESH_SECONDS
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, api, dataset_id, sent, submit, work

__all__ = ["api", "dataset_id", "sent"]  # fixtures

ROWS = {"inputs": [[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]]}


def _model(
    api: TestClient, key: str, dataset: str, db: Database, settings: Settings, seed: int
) -> str:
    run = submit(api, key, dataset, {**SPEC, "seed": seed}).json()
    assert work(db, settings, run["id"]) == "succeeded"
    return str(api.get(f"/v1/runs/{run['id']}", headers=bearer(key)).json()["model_id"])


def test_names_versions_aliases_rollback_and_predict(
    api: TestClient, tenant_key: str, other_key: str, dataset_id: str, db: Database,
    settings: Settings,
) -> None:  # fmt: skip
    h = bearer(tenant_key)
    first, second = (_model(api, tenant_key, dataset_id, db, settings, s) for s in (1, 2))
    assert api.post("/v1/registry", headers=h, json={"name": "blobs"}).status_code == 201
    taken = api.post("/v1/registry", headers=h, json={"name": "blobs"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    versions = [
        api.post("/v1/registry/blobs/versions", headers=h, json={"model_id": m}).json()
        for m in (first, second, first)
    ]
    assert [v["version"] for v in versions] == [1, 2, 3]

    def move(alias: str, version: int) -> Any:
        return api.put(f"/v1/registry/blobs/aliases/{alias}", headers=h, json={"version": version})

    assert move("production", 1).json() == {"name": "blobs", "alias": "production", "version": 1}
    assert move("production", 2).status_code == 200
    described = api.get("/v1/registry/blobs", headers=h).json()
    assert described["aliases"] == {"production": 2}
    assert [(v["version"], v["model_id"]) for v in described["versions"]] == [
        (1, first), (2, second), (3, first),
    ]  # fmt: skip

    by_alias = api.post("/v1/registry/blobs/aliases/production/predict", headers=h, json=ROWS)
    direct = api.post(f"/v1/models/{second}/predict", headers=h, json=ROWS).json()
    assert by_alias.status_code == 200, by_alias.text
    answer = by_alias.json()
    assert answer["name"] == "blobs" and answer["version"] == 2 and answer["model_id"] == second
    assert answer["probabilities"] == direct["probabilities"]
    by_version = api.post("/v1/registry/blobs/versions/1/predict", headers=h, json=ROWS).json()
    assert by_version["version"] == 1 and by_version["model_id"] == first

    assert move("production", 1).status_code == 200  # the rollback
    rolled = api.post("/v1/registry/blobs/aliases/production/predict", headers=h, json=ROWS)
    assert rolled.json()["model_id"] == first
    assert api.delete("/v1/registry/blobs/aliases/production", headers=h).status_code == 204
    gone = api.post("/v1/registry/blobs/aliases/production/predict", headers=h, json=ROWS)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "alias_not_found"
    history = api.get("/v1/registry/blobs/aliases/production/history", headers=h).json()
    assert [(m["from_version"], m["to_version"]) for m in history] == [
        (None, 1), (1, 2), (2, 1), (1, None),
    ]  # fmt: skip
    assert len({m["api_key_id"] for m in history}) == 1 and history[0]["api_key_id"]
    assert api.get("/v1/registry", headers=h).json()["items"][0]["name"] == "blobs"

    # Another tenant: nothing of this exists, and its models cannot be registered here.
    o = bearer(other_key)
    assert api.get("/v1/registry/blobs", headers=o).status_code == 404
    assert (
        api.post("/v1/registry/blobs/versions/1/predict", headers=o, json=ROWS).status_code == 404
    )
    assert (
        api.post("/v1/registry", headers=o, json={"name": "blobs"}).status_code == 201
    )  # own name
    foreign = api.post("/v1/registry/blobs/versions", headers=o, json={"model_id": first})
    assert foreign.status_code == 404


def test_bad_names_aliases_and_versions_are_named(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    h = bearer(tenant_key)
    for bad in ("has space", "-leading", "x" * 101, "a/b"):
        response = api.post("/v1/registry", headers=h, json={"name": bad})
        assert response.status_code == 422, bad
    assert api.post("/v1/registry", headers=h, json={"name": "m"}).status_code == 201
    missing = api.put("/v1/registry/m/aliases/prod", headers=h, json={"version": 7})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"
    model_id = _model(api, tenant_key, dataset_id, db, settings, 3)
    api.post("/v1/registry/m/versions", headers=h, json={"model_id": model_id})
    numeric = api.put("/v1/registry/m/aliases/42", headers=h, json={"version": 1})
    assert numeric.status_code == 422 and numeric.json()["error"]["details"]["field"] == "alias"
    never = api.get("/v1/registry/m/aliases/prod/history", headers=h)
    assert never.status_code == 404
    assert api.post("/v1/registry/m/versions/0/predict", headers=h, json=ROWS).status_code == 422


def _statements(db: Database) -> list[str]:
    """Every SQL statement the engine runs from now on (a real listener, not a mock)."""
    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_an_alias_moved_on_one_process_is_used_by_another_within_a_second(
    tenant_key: str, dataset_id: str, api: TestClient, db: Database, settings: Settings,
    sent: Any,
) -> None:  # fmt: skip
    """Two API processes (two apps with their own caches) on one database: a predict by alias
    reads the database once per cache lifetime, not per call, and the move made on the first is
    answered by the second within a second."""
    h = bearer(tenant_key)
    first, second = (_model(api, tenant_key, dataset_id, db, settings, s) for s in (1, 2))
    api.post("/v1/registry", headers=h, json={"name": "blobs"})
    for m in (first, second):
        api.post("/v1/registry/blobs/versions", headers=h, json={"model_id": m})
    api.put("/v1/registry/blobs/aliases/production", headers=h, json={"version": 1})
    other = TestClient(create_app(settings, database=db, enqueue=sent))
    url = "/v1/registry/blobs/aliases/production/predict"
    assert other.post(url, headers=h, json=ROWS).json()["version"] == 1  # cached from here

    statements = _statements(db)
    started = time.monotonic()
    for _ in range(20):
        assert other.post(url, headers=h, json=ROWS).json()["model_id"] == first
    refreshes = 1 + (time.monotonic() - started) / RESOLVE_FRESH_SECONDS
    registry_reads = [s for s in statements if "model_aliases" in s or "model_versions" in s]
    assert len(registry_reads) <= refreshes < 20  # one query per refresh

    assert api.put(url.rsplit("/", 1)[0], headers=h, json={"version": 2}).status_code == 200
    assert api.post(url, headers=h, json=ROWS).json()["version"] == 2  # the mover: at once
    moved = time.monotonic()
    while other.post(url, headers=h, json=ROWS).json()["version"] != 2:
        assert time.monotonic() - moved < 1.0, "the second process still uses version 1"
        time.sleep(0.02)
    assert other.post(url, headers=h, json=ROWS).json()["model_id"] == second


def test_predict_names_what_is_missing(
    api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings
) -> None:
    """The predict path resolves a name, an alias or a version in one query; each 404 says
    which of them is missing, and a found one answers with its version."""
    h = bearer(tenant_key)
    assert api.post("/v1/registry", headers=h, json={"name": "m"}).status_code == 201
    model_id = _model(api, tenant_key, dataset_id, db, settings, 3)
    api.post("/v1/registry/m/versions", headers=h, json={"model_id": model_id})
    assert api.put("/v1/registry/m/aliases/prod", headers=h, json={"version": 1}).status_code == 200
    cases = {
        "/v1/registry/nope/aliases/prod/predict": "registered_model_not_found",
        "/v1/registry/nope/versions/1/predict": "registered_model_not_found",
        "/v1/registry/m/aliases/staging/predict": "alias_not_found",
        "/v1/registry/m/versions/2/predict": "version_not_found",
    }
    for path, code in cases.items():
        answer = api.post(path, headers=h, json=ROWS)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == code, path
    for path in ("/v1/registry/m/aliases/prod/predict", "/v1/registry/m/versions/1/predict"):
        answer = api.post(path, headers=h, json=ROWS)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1 and answer.json()["model_id"] == model_id
