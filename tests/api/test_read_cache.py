"""Finished objects' reads answered from the API process's memory (api.read_cache): a repeated
GET of a model, a dataset or a final run reads the database once; a run still queued is read
every time; entries are per tenant; a tenant's write forgets them; they expire."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.read_cache import Finished, ReadCache
from core.runs import events
from store.session import Database
from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, dataset_id, sent, submit, trained

__all__ = ["api", "dataset_id", "sent", "trained"]


@pytest.fixture
def reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The read connections the app opens (each a database round trip)."""
    opened: list[str] = []
    original = db.read

    async def counting(work: Any) -> Any:
        opened.append("read")
        return await original(work)

    monkeypatch.setattr(db, "read", counting)
    return opened


@pytest.fixture
def run_reads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    original = events.current_run

    async def counting(db: Database, *, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Any:
        seen.append(run_id)
        return await original(db, tenant_id=tenant_id, run_id=run_id)

    monkeypatch.setattr(events, "current_run", counting)
    return seen


def test_a_finished_run_model_and_dataset_are_read_once(
    reads: list[str], run_reads: list[uuid.UUID], api: TestClient, tenant_key: str,
    trained: dict[str, Any],
) -> None:  # fmt: skip
    """``trained`` read the run once already (counted): every GET here is a hit for it."""
    headers = bearer(tenant_key)
    reads_before = len(reads)
    for path in (f"/v1/runs/{trained['id']}", f"/v1/models/{trained['model_id']}",
                 f"/v1/datasets/{trained['dataset_id']}"):  # fmt: skip
        first, second = api.get(path, headers=headers), api.get(path, headers=headers)
        assert first.status_code == second.status_code == 200, first.text
        assert first.content == second.content
        assert second.headers["cache-control"] == "private, max-age=5"
    assert len(run_reads) == 1  # the run: once, by the fixture
    assert len(reads) - reads_before == 2  # the model and the dataset: once each


def test_a_queued_run_is_read_every_time(
    api: TestClient, tenant_key: str, dataset_id: str, run_reads: list[uuid.UUID]
) -> None:
    run = submit(api, tenant_key, dataset_id).json()
    for _ in range(3):
        answer = api.get(f"/v1/runs/{run['id']}", headers=bearer(tenant_key))
        assert answer.json()["status"] == "queued" and "cache-control" not in answer.headers
    assert len(run_reads) == 3


def test_another_tenant_gets_its_own_404_not_the_kept_answer(
    api: TestClient, tenant_key: str, other_key: str, trained: dict[str, Any]
) -> None:
    path = f"/v1/models/{trained['model_id']}"
    assert api.get(path, headers=bearer(tenant_key)).status_code == 200
    assert api.get(path, headers=bearer(other_key)).status_code == 404


def test_a_write_forgets_the_tenants_reads(
    run_reads: list[uuid.UUID], api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    headers = bearer(tenant_key)
    run_path, dataset_path = f"/v1/runs/{trained['id']}", f"/v1/datasets/{trained['dataset_id']}"
    assert api.get(run_path, headers=headers).json()["dataset_id"] == trained["dataset_id"]
    assert api.get(dataset_path, headers=headers).status_code == 200
    assert api.delete(dataset_path, headers=headers).status_code == 204
    assert api.get(dataset_path, headers=headers).status_code == 404
    assert api.get(run_path, headers=headers).json()["dataset_id"] is None  # read afresh
    assert len(run_reads) == 2  # by the fixture, then after the delete


def test_entries_expire_and_zero_seconds_keeps_nothing() -> None:
    now = [0.0]
    cache = ReadCache(5.0, clock=lambda: now[0])
    tenant = uuid.uuid4()
    cache.keep(tenant, "/v1/models/x?", Finished(b'{"id": "x"}'))
    hit = cache.get(tenant, "/v1/models/x?")
    assert hit is not None and hit.body == b'{"id": "x"}'
    assert cache.get(uuid.uuid4(), "/v1/models/x?") is None  # another tenant
    now[0] = 5.1
    assert cache.get(tenant, "/v1/models/x?") is None
    off = ReadCache(0.0)
    off.keep(tenant, "/v1/models/x?", Finished(b"{}"))
    assert off.get(tenant, "/v1/models/x?") is None


def test_a_final_runs_history_is_kept_once_the_run_was_read_final(
    reads: list[str], api: TestClient, tenant_key: str, trained: dict[str, Any],
    dataset_id: str,
) -> None:  # fmt: skip
    """``trained`` read its run as final: its history is then final too. A queued run's is not."""
    headers = bearer(tenant_key)
    path = f"/v1/runs/{trained['id']}/history?max_points=3"
    before = len(reads)
    answers = [api.get(path, headers=headers) for _ in range(3)]
    assert len(reads) - before == 1 and answers[0].content == answers[2].content
    assert len(answers[0].json()["epochs"]) == 3
    queued = submit(api, tenant_key, dataset_id).json()["id"]
    api.get(f"/v1/runs/{queued}", headers=headers)
    before = len(reads)
    for _ in range(2):
        assert api.get(f"/v1/runs/{queued}/history", headers=headers).json()["epochs"] == []
    assert len(reads) - before == 2


def test_a_predict_forgets_nothing(
    reads: list[str], api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    """A predict is a POST that changes nothing: the tenant's kept reads stay kept."""
    headers = bearer(tenant_key)
    model_path = f"/v1/models/{trained['model_id']}"
    assert api.get(model_path, headers=headers).status_code == 200
    before = len(reads)
    answer = api.post(f"{model_path}/predict", headers=headers, json={"inputs": [[0, 0, 0, 0]]})
    assert answer.status_code == 200, answer.text
    assert api.get(model_path, headers=headers).status_code == 200
    assert len(reads) == before  # the model: from memory, after the predict too
    assert api.delete(f"/v1/datasets/{trained['dataset_id']}", headers=headers).status_code == 204
    assert api.get(model_path, headers=headers).status_code == 200
    assert len(reads) == before + 1  # a write does forget
