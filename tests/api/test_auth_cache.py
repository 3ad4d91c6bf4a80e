"""The API trusts a checked key for `auth_cache_seconds`, then asks the database again."""

from __future__ import annotations

import time
import warnings

import pytest

from api.app import create_app
from core import auth
from core.config import Settings
from store.session import Database
from tests.api.conftest import bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def revoke(db: Database, key: str) -> None:
    with db.session() as session:
        info = auth.revoke_key_ref(session, key)
    assert info is not None and info.revoked_at is not None


def test_cached_key_skips_the_database_then_expires(
    settings: Settings, db: Database, tenant_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(
        create_app(settings.model_copy(update={"auth_cache_seconds": 0.5}), database=db)
    )
    calls: list[str | None] = []
    real = auth.authenticate

    def counting(session, key):
        calls.append(key)
        return real(session, key)

    monkeypatch.setattr(auth, "authenticate", counting)

    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert len(calls) == 1  # the second request was answered from the cache

    revoke(db, tenant_key)
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200  # cached
    time.sleep(0.6)
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 401
    assert len(calls) == 2


def test_failed_keys_are_never_cached(settings: Settings, db: Database, tenant_key: str) -> None:
    client = TestClient(
        create_app(settings.model_copy(update={"auth_cache_seconds": 60}), database=db)
    )
    wrong = tenant_key[:-2] + "xx"
    assert client.get("/v1/datasets", headers=bearer(wrong)).status_code == 401
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert client.get("/v1/datasets", headers=bearer(wrong)).status_code == 401
    assert client.get("/v1/datasets").status_code == 401
