"""Production shape with real processes: uvicorn (API) and a ``celery worker`` subprocess against
the tests' Redis and a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from core.auth import create_api_key
from descent.processes import clean_env
from store.session import Database, make_engine_for_url
from tests.e2e.client_flow import cli_flow, cli_runner_flow, client_flow
from tests.e2e.dashboard_flow import dashboard_flow
from tests.e2e.helpers import (
    API_APP,
    free_port,
    process,
    train_digits_through_api,
    uvicorn_argv,
    wait_healthy,
    worker_argv,
)
from tests.services import redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def redis_db() -> str:
    """The tests' Redis, a database number of its own (nothing is flushed: it may be shared)."""
    return redis_url(9)


def test_uvicorn_and_celery_worker_train_digits(
    fresh_postgres_url: str, redis_db: str, tmp_path: Path
) -> None:
    db = Database(make_engine_for_url(fresh_postgres_url))
    with db.session() as session:
        key = create_api_key(session, f"e2e-{uuid.uuid4().hex[:8]}")
    db.dispose()

    env = clean_env(
        DESCENT_DATABASE_URL=fresh_postgres_url,
        DESCENT_BROKER_URL=redis_db,
        DESCENT_DATA_DIR=str(tmp_path / "data"),
        DESCENT_RECONCILE_EVERY_SECONDS="2",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    repo = Path(__file__).resolve().parents[2]
    with (
        process(worker_argv(), env=env, log=tmp_path / "worker.log", cwd=repo),
        process(uvicorn_argv(API_APP, port), env=env, log=tmp_path / "api.log", cwd=repo) as api,
    ):
        wait_healthy(base, api, tmp_path / "api.log")
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        assert ready["checks"] == {"database": "ok", "broker": "ok"}
        final = train_digits_through_api(base, key)
        assert final["attempts"] == 1
        dashboard_flow(base, key, final["id"])
        dataset_id = client_flow(base, key, tmp_path)
        cli_runner_flow(base, key, dataset_id)
        cli_flow(base, key, tmp_path)
