"""Shared pieces for the runs / models HTTP tests: an app whose enqueue records run ids, a small
dataset, and an in-process 'worker' (core.training.run_training, what the Celery task calls)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from core.auth import authenticate, create_api_key
from core.config import Settings
from core.datasets import create_dataset
from core.runs import training
from descent import Client
from store.session import Database
from tests.api.conftest import bearer

FEATURES = ["a", "b", "c", "d"]
SPEC = {
    "layers": [{"units": 8}],
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "epochs": 4,
    "batch_size": 16,
    "seed": 3,
}


class Sent(list[str]):
    fail: bool = False

    def __call__(self, run_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.append(run_id)


def tenant_with_blobs(
    db: Database, settings: Settings, tmp_path: Path, name: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """A new tenant (via its API key) and the blobs dataset uploaded for it, through the
    services (no HTTP): (tenant_id, dataset_id)."""
    with db.session() as session:
        key = create_api_key(session, name)
    with db.read_session() as session:
        tenant = authenticate(session, key).tenant_id
    path = tmp_path / "blobs.csv"
    path.write_bytes(blobs_csv())
    with db.session() as session:
        dataset = create_dataset(
            session, tenant_id=tenant, upload_path=path, filename="b.csv", name=None,
            label=None, settings=settings,
        )  # fmt: skip
    return tenant, dataset.id


def blobs_csv(n: int = 90, seed: int = 0) -> bytes:
    """Three well-separated classes (red/green/blue) in four numeric features."""
    rng = np.random.default_rng(seed)
    names = ["blue", "green", "red"]
    lines = [",".join([*FEATURES, "colour"])]
    for i in range(n):
        k = i % 3
        x = rng.normal(size=4) * 0.3 + np.array([k * 2.0, -k * 1.5, k, 0.0])
        lines.append(",".join(f"{v:.5f}" for v in x) + f",{names[k]}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def api(settings: Settings, db: Database, sent: Sent) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=db, enqueue=sent)) as client:
        yield client


@pytest.fixture
def dataset_id(api: TestClient, tenant_key: str) -> str:
    response = api.post(
        "/v1/datasets", headers=bearer(tenant_key), files={"file": ("blobs.csv", blobs_csv())}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(
    api: TestClient, key: str, dataset_id: str, spec: dict[str, Any] | None = None, **extra: Any
) -> Any:
    body = {"dataset_id": dataset_id, "spec": SPEC if spec is None else spec, **extra}
    return api.post("/v1/runs", headers=bearer(key), json=body)


def in_process_client(transport: httpx.BaseTransport, key: str) -> Client:
    """The Python client talking to the app in this process (no retries: answers as they come)."""
    return Client("http://testserver", api_key=key, transport=transport, retries=0)


def work(db: Database, settings: Settings, run_id: str) -> str:
    return training.run_training(db, run_id, settings=settings)


@pytest.fixture
def trained(api: TestClient, tenant_key: str, dataset_id: str, db: Database, settings: Settings):
    run = submit(api, tenant_key, dataset_id).json()
    assert work(db, settings, run["id"]) == "succeeded"
    return api.get(f"/v1/runs/{run['id']}", headers=bearer(tenant_key)).json()
