"""Two tenants, A and B, each with a dataset, a succeeded run with its model, and a queued run.

The security tests call A's objects with B's key (and the other way round) on SQLite and
PostgreSQL. Training is the in-process ``core.training.run_training`` the worker calls.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass

import httpx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from core.auth import authenticate, create_api_key
from core.config import Settings
from core.runs import training
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import SPEC, Sent, blobs_csv


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str
    tenant_id: uuid.UUID
    dataset_id: str
    run_id: str  # succeeded
    model_id: str
    queued_run_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


def make_tenant(api: httpx.Client, db: Database, settings: Settings, name: str) -> Tenant:
    with db.session() as session:
        key = create_api_key(session, name)
    with db.read_session() as session:
        tenant_id = authenticate(session, key).tenant_id
    headers = bearer(key)
    response = api.post(
        "/v1/datasets", headers=headers, files={"file": (f"{name}.csv", blobs_csv())}
    )
    assert response.status_code == 201, response.text
    dataset_id = response.json()["id"]
    body = {"dataset_id": dataset_id, "spec": SPEC}
    run_id = api.post("/v1/runs", headers=headers, json=body).json()["id"]
    assert training.run_training(db, run_id, settings=settings) == "succeeded"
    model_id = api.get(f"/v1/runs/{run_id}", headers=headers).json()["model_id"]
    queued = api.post("/v1/runs", headers=headers, json=body)
    assert queued.status_code == 202, queued.text
    return Tenant(name, key, tenant_id, dataset_id, run_id, model_id, queued.json()["id"])


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def api(app_settings: Settings, db: Database, sent: Sent) -> TestClient:
    # raise_server_exceptions=False: a 500 must show up as a response, like a client sees it.
    return TestClient(
        create_app(app_settings, database=db, enqueue=sent), raise_server_exceptions=False
    )


@pytest.fixture
def tenant_a(api: TestClient, db: Database, settings: Settings) -> Tenant:
    return make_tenant(api, db, settings, "tenant-a")


@pytest.fixture
def tenant_b(api: TestClient, db: Database, settings: Settings) -> Tenant:
    return make_tenant(api, db, settings, "tenant-b")
