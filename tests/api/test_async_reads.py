"""PostgreSQL reads on the API's event loop (store.async_reads): the same rows as the engine's,
no worker thread, a connection that died answered 503 once and replaced, an idle one pinged
and replaced before use, a full pool 503 after its timeout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.util.concurrency import await_only

from core import predictions
from core.datasets import service as datasets
from core.runs import service as runs
from store import async_reads
from store.async_reads import APPLICATION_NAME, AsyncReads
from store.session import JSON_LOADS, Database, NoConnectionSoon
from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, dataset_id, sent, submit, trained

__all__ = ["api", "dataset_id", "sent", "trained"]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend_url", ["postgres"], indirect=True),
]


def _reads(db: Database) -> AsyncReads:
    assert db.async_reads is not None, "the API's lifespan opens the async reads on PostgreSQL"
    return db.async_reads


def _works(tenant: uuid.UUID, run: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    run_id, model_id = uuid.UUID(run["id"]), uuid.UUID(run["model_id"])
    dataset = uuid.UUID(run["dataset_id"])
    return {
        "runs": lambda c: runs.list_runs(c, tenant_id=tenant, limit=50).items,
        "runs page 1": lambda c: runs.list_runs(c, tenant_id=tenant, limit=1),
        "succeeded runs": lambda c: (
            runs.list_runs(
                c, tenant_id=tenant, limit=5, status="succeeded", dataset_id=dataset
            ).items
        ),
        "models": lambda c: predictions.list_models(c, tenant_id=tenant, limit=50).items,
        "datasets": lambda c: datasets.list_datasets(c, tenant_id=tenant, limit=50).items,
        "run": lambda c: [runs.run_view(c, tenant_id=tenant, run_id=run_id)],
        "history": lambda c: runs.get_history(c, tenant_id=tenant, run_id=run_id),
        "thinned history": lambda c: runs.get_history(
            c, tenant_id=tenant, run_id=run_id, max_points=2
        ),
        "model": lambda c: [predictions.get_model(c, tenant_id=tenant, model_id=model_id)],
        "dataset": lambda c: [datasets.get_dataset(c, tenant_id=tenant, dataset_id=dataset)],
    }


def _tenant(db: Database) -> uuid.UUID:
    with db.read_connection() as conn:
        return uuid.UUID(str(conn.execute(text("SELECT tenant_id FROM runs LIMIT 1")).scalar()))


@pytest.mark.parametrize("rows_on_the_loop", [async_reads.ROWS_ON_THE_LOOP, 0])
def test_rows_read_on_the_event_loop_are_the_engines(
    api: TestClient, db: Database, tenant_key: str, dataset_id: str, trained: dict[str, Any],
    rows_on_the_loop: int, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Rows made on the loop, and (0) every answer's rows made in a worker thread."""
    monkeypatch.setattr(async_reads, "ROWS_ON_THE_LOOP", rows_on_the_loop)
    submit(api, tenant_key, dataset_id)  # a second run, queued: two runs to page through
    reads, portal = _reads(db), api.portal
    assert portal is not None  # the client's event loop, where the pool was opened
    for name, work in _works(_tenant(db), trained).items():
        on_loop = portal.call(reads.run, work)
        with db.read_connection() as conn:
            engine = work(conn)
        if hasattr(engine, "items"):  # a page: its cursor too
            assert on_loop.next_cursor == engine.next_cursor is not None, name
            on_loop, engine = on_loop.items, engine.items
        assert len(on_loop) == len(engine) > 0, name
        for a, b in zip(on_loop, engine, strict=True):
            assert a._fields == tuple(b._fields), name
            assert tuple(a) == tuple(b), name
            assert [type(v) for v in a] == [type(v) for v in b], name


def test_http_reads_open_no_engine_connection(
    api: TestClient, db: Database, tenant_key: str, trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def refused() -> Any:
        raise AssertionError("a read took the worker-thread path")

    monkeypatch.setattr(db, "read_connection", refused)
    headers = bearer(tenant_key)
    for path in ("/v1/runs", "/v1/models", "/v1/datasets", f"/v1/runs/{trained['id']}/history"):
        assert api.get(path, headers=headers).status_code == 200, path


def _kill_pool_connections(db: Database) -> int:
    with db.read_connection() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        ).scalar()
    return int(killed or 0)


def test_a_connection_that_died_in_use_is_a_503_then_replaced(
    api: TestClient, db: Database, tenant_key: str, trained: dict[str, Any]
) -> None:
    headers = bearer(tenant_key)
    assert api.get("/v1/runs", headers=headers).status_code == 200
    _reads(db)._ping_after = 3600.0  # in steady use: no ping before the read
    assert _kill_pool_connections(db) >= 1
    answers = [api.get("/v1/runs", headers=headers) for _ in range(3)]
    assert answers[0].status_code == 503, answers[0].text
    assert answers[0].json()["error"]["code"] == "dependency_unavailable"
    assert "database" in answers[0].json()["error"]["message"]
    assert [a.status_code for a in answers[1:]] == [200, 200]


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_before_use(
    api: TestClient, db: Database, tenant_key: str, trained: dict[str, Any]
) -> None:
    headers = bearer(tenant_key)
    assert api.get("/v1/runs", headers=headers).status_code == 200
    _reads(db)._ping_after = 0.0  # every connection counts as idle
    assert _kill_pool_connections(db) >= 1
    assert api.get("/v1/runs", headers=headers).status_code == 200


def test_a_full_pool_hands_the_read_to_the_engine(db: Database) -> None:
    """No pooled connection within the short wait (all busy here; or none can be made, the
    database being down): ``run`` says so at once, and ``Database.read`` reads through the
    engine instead, which refuses at once when the database is unreachable."""
    reads = AsyncReads(db.engine, size=1, wait=0.2, ping_after=1.0, json_loads=JSON_LOADS)
    one = text("SELECT 1")

    async def scenario() -> None:
        await reads.open()
        db.async_reads = reads
        held, release = asyncio.Event(), asyncio.Event()

        def hold(conn: Any) -> None:
            held.set()
            await_only(release.wait())

        holder = asyncio.create_task(reads.run(hold))
        await held.wait()
        try:
            with pytest.raises(NoConnectionSoon):
                await reads.run(lambda conn: None)
            engine_reads: list[str] = []
            original = db.read_connection

            def counted() -> Any:
                engine_reads.append("engine")
                return original()

            db.read_connection = counted  # type: ignore[method-assign]
            try:
                assert await db.read(lambda conn: conn.execute(one).scalar_one()) == 1
            finally:
                del db.read_connection
            assert engine_reads == ["engine"]
        finally:
            release.set()
            await holder
            db.async_reads = None
            await reads.close()

    asyncio.run(scenario())
