"""The API trusts a checked key for `auth_cache_seconds`, then asks the database again; a key
that failed is asked about every time."""

from __future__ import annotations

import uuid
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def revoke(db: Database, key: str) -> None:
    with db.session() as session:
        info = auth.revoke_key_ref(session, key)
    assert info is not None and info.revoked_at is not None


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every key the database was asked about."""
    calls: list[str | None] = []
    real = auth.authenticate

    def counting(session, key):
        calls.append(key)
        return real(session, key)

    monkeypatch.setattr(auth, "authenticate", counting)
    return calls


def client_with_clock(settings: Settings, db: Database, ttl: float, clock: FakeClock):
    app = create_app(settings.model_copy(update={"auth_cache_seconds": ttl}), database=db)
    app.state.principal_cache = auth.PrincipalCache(ttl, clock=clock)
    return TestClient(app)


def test_cached_key_skips_the_database_then_expires(
    settings: Settings, db: Database, tenant_key: str, lookups: list[str | None]
) -> None:
    clock = FakeClock()
    client = client_with_clock(settings, db, 5.0, clock)
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert lookups == [tenant_key]  # the second request was answered from the cache

    revoke(db, tenant_key)
    clock.now += 4.9
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200  # cached
    assert len(lookups) == 1
    clock.now += 0.2  # past the 5 s the key was trusted for
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 401
    assert lookups == [tenant_key, tenant_key]


def test_failed_keys_are_never_cached(
    settings: Settings, db: Database, tenant_key: str, lookups: list[str | None]
) -> None:
    client = client_with_clock(settings, db, 60.0, FakeClock())
    wrong = tenant_key[:-2] + "xx"
    for _ in range(3):
        assert client.get("/v1/datasets", headers=bearer(wrong)).status_code == 401
    # Each failed attempt went to the database: a cached failure would have stopped at one.
    assert lookups.count(wrong) == 3
    assert client.get("/v1/datasets", headers=bearer(tenant_key)).status_code == 200
    assert client.get("/v1/datasets", headers=bearer(wrong)).status_code == 401
    assert lookups.count(wrong) == 4


def test_cache_entries_expire_by_the_injected_clock() -> None:
    clock = FakeClock()
    cache = auth.PrincipalCache(2.0, clock=clock)
    principal = auth.Principal(tenant_id=uuid.uuid4(), api_key_id=uuid.uuid4())
    digest, found = cache.get("dsk_key")
    assert found is None
    cache.put(digest, principal)
    assert cache.get("dsk_key")[1] == principal
    clock.now += 2.01
    assert cache.get("dsk_key")[1] is None
    # ttl 0 turns the cache off
    off = auth.PrincipalCache(0.0, clock=clock)
    off.put(digest, principal)
    assert off.get("dsk_key")[1] is None
