"""Hostile and broken input over HTTP, the plan rows the parser/service tests do not already
cover (B6, B7, B9, B10 on JSON bodies, S5, and the fuzzer's finds): each is a 4xx naming the
problem, quickly, and nothing already stored changes."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from core.config import Settings
from core.runs import training
from store.session import Database
from store.tables import Run
from tests.api.conftest import BOUNDARY, drive_upload
from tests.api.runs_fixtures import Sent
from tests.security.conftest import Tenant

DEEP = 100_000


def _run_count(db: Database) -> int:
    with db.read_session() as session:
        return session.query(Run).count()


def _timed_post(
    api: TestClient, path: str, headers: dict[str, str], content: bytes | str
) -> tuple[Any, float]:
    start = time.perf_counter()
    response = api.post(path, headers=headers, content=content)
    return response, time.perf_counter() - start


@pytest.mark.parametrize(
    ("spec", "field", "needle"),
    [
        ({"layers": [{"units": 10_000}] * 10_000}, "spec.layers", "at most"),
        ({"layers": [{"units": 10_000}] * 4}, "spec.layers", "parameters"),
        (
            {"optimizer": {"name": "sgd", "learning_rate": -0.1}},
            "spec.optimizer.learning_rate",
            "greater than 0",
        ),
        ({"epochs": 10**30}, "spec", "integer out of range"),
        ({"name\ud800": 1}, "spec", "surrogate"),
    ],
)
def test_out_of_range_spec_refused_before_queueing(
    api: TestClient, db: Database, tenant_b: Tenant, sent: Sent, spec: dict, field: str, needle: str
) -> None:
    before, sent[:] = _run_count(db), []
    for path in ("/v1/runs", "/v1/runs/validate"):
        # json.dumps escapes lone surrogates (\\ud800), as a hostile client would send them.
        body = json.dumps({"dataset_id": tenant_b.dataset_id, "spec": spec})
        headers = {**tenant_b.headers, "Content-Type": "application/json"}
        response, seconds = _timed_post(api, path, headers, body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["details"]["field"].startswith(field), error
        assert needle in error["message"], error
        # A guard against blow-ups (minutes), not a speed target: ~0.2 s here, 1.9 s once on a
        # loaded CI machine.
        assert seconds < 5.0
    assert _run_count(db) == before and sent == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[" * DEEP + b"]" * DEEP, "nests too deeply"),
        (b'{"dataset_id": "x", "spec": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}", "deeply"),
        (b'{"dataset_id": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_unparsable_json_bodies(
    api: TestClient, db: Database, tenant_b: Tenant, body: bytes, needle: str
) -> None:
    before = _run_count(db)
    headers = {**tenant_b.headers, "Content-Type": "application/json"}
    for path in ("/v1/runs", "/v1/runs/validate"):
        response, seconds = _timed_post(api, path, headers, body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "malformed_body" and needle in error["message"]
        assert seconds < 5.0  # a guard against blow-ups, not a speed target
    # Predict parses its own body (orjson): deep nesting is refused there too.
    path = f"/v1/models/{tenant_b.model_id}/predict"
    response, seconds = _timed_post(api, path, headers, body)
    assert 400 <= response.status_code < 500 and seconds < 5.0, response.text
    assert _run_count(db) == before


def _fields(names: list[str]) -> list[bytes]:
    """One chunk per part, so the test sees how far the server read."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\nx\r\n'.encode()
        for n in names
    ]
    file = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n'
        "a,y\r\n1,0\r\n2,1\r\n"
    ).encode()
    return [*parts, file, f"\r\n--{BOUNDARY}--\r\n".encode()]


def test_form_floods(api: TestClient, tenant_b: Tenant, settings: Settings) -> None:
    """S5: 2000 form fields are refused at the first one that cannot be right (a repeated or an
    unknown field), long before the rest is read; a 10 MB urlencoded body is not a form we
    parse at all."""
    before = api.get("/v1/datasets", headers=tenant_b.headers).json()
    for names, code, field in (
        (["name"] * 2000, "invalid_input", "name"),
        ([f"f{i}" for i in range(2000)], "unexpected_field", "f0"),
    ):
        chunks = _fields(names)
        status, body, _, consumed = drive_upload(api.app, chunks, key=tenant_b.key)
        assert status in (400, 422) and body["error"]["code"] == code, body
        assert body["error"]["details"]["field"] == field
        assert consumed < sum(map(len, chunks)) // 100
    flood = b"name=" + b"x" * (10 * 1024 * 1024)
    headers = {**tenant_b.headers, "Content-Type": "application/x-www-form-urlencoded"}
    response = api.post("/v1/datasets", headers=headers, content=flood)
    assert response.status_code == 415, response.text
    assert api.get("/v1/datasets", headers=tenant_b.headers).json() == before
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def _upload(api: TestClient, t: Tenant, csv: str) -> str:
    files = {"file": ("d.csv", csv.encode())}
    response = api.post("/v1/datasets", headers=t.headers, files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_singleton_class_with_a_stratified_split(
    api: TestClient, db: Database, settings: Settings, tenant_b: Tenant
) -> None:
    """B6: a class with one sample cannot be stratified into train and validation. The upload is
    fine (the data are valid); the submit is refused with 422 naming the class and the fix (the
    dataset row carries its class counts), nothing is queued; with validation_split 0 it trains."""
    rows = [f"{i % 7},{(i * 3) % 5},{'a' if i % 2 else 'b'}" for i in range(40)]
    dataset_id = _upload(api, tenant_b, "x,z,label\n" + "\n".join([*rows, "9,9,c"]) + "\n")
    spec = {"layers": [{"units": 4}], "epochs": 2, "validation_split": 0.2}
    body = {"dataset_id": dataset_id, "spec": spec}
    for route in ("/v1/runs", "/v1/runs/validate"):
        refused = api.post(route, headers=tenant_b.headers, json=body)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "single_sample_class"
        assert error["details"] == {"field": "spec.validation_split", "class": "c", "count": 1}
        assert "single sample" in error["message"] and "validation_split" in error["message"]
    listed = api.get("/v1/runs", headers=tenant_b.headers, params={"dataset_id": dataset_id})
    assert listed.json()["items"] == []

    body = {"dataset_id": dataset_id, "spec": {**spec, "validation_split": 0.0}}
    ok = api.post("/v1/runs", headers=tenant_b.headers, json=body).json()
    assert "id" in ok, ok
    assert training.run_training(db, ok["id"], settings=settings) == "succeeded"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_run_fails_and_serves_nothing(
    api: TestClient, db: Database, settings: Settings, tenant_b: Tenant
) -> None:
    """B7: learning rate 1e3 is refused at submit (the spec caps it at 10); the largest allowed
    rate with heavy momentum diverges: the run fails with code `diverged` naming where, is not
    retried, stores no model, and tenant B's earlier model still predicts."""
    spec: dict[str, Any] = {
        "layers": [{"units": 64}] * 3,
        "optimizer": {"name": "sgd", "learning_rate": 1e3, "momentum": 0.99},
        "preprocessing": {"standardize": False},
        "epochs": 5,
    }
    body = {"dataset_id": tenant_b.dataset_id, "spec": spec}
    refused = api.post("/v1/runs", headers=tenant_b.headers, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"]["field"] == "spec.optimizer.learning_rate"
    spec["optimizer"]["learning_rate"] = 10.0
    run_id = api.post("/v1/runs", headers=tenant_b.headers, json=body).json()["id"]
    assert training.run_training(db, run_id, settings=settings) == "failed"
    run = api.get(f"/v1/runs/{run_id}", headers=tenant_b.headers).json()
    assert run["status"] == "failed" and run["error"]["code"] == "diverged"
    assert "epoch" in run["error"]["message"] and run["model_id"] is None
    assert training.run_training(db, run_id, settings=settings) == "skipped"
    listed = api.get("/v1/runs", headers=tenant_b.headers, params={"status": "succeeded"})
    assert [r["id"] for r in listed.json()["items"]] == [tenant_b.run_id]
    predict = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
    path = f"/v1/models/{tenant_b.model_id}/predict"
    assert api.post(path, headers=tenant_b.headers, json=predict).status_code == 200
