"""S9: per-tenant limits. Concurrent runs and request rate answer 429 with Retry-After through
the one error handler; another tenant is not affected."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings

import httpx
import pytest
import redis

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from core.config import Settings
from core.errors import RateLimited
from core.limits import (
    RedisWindowLimiter,
    TokenBucketLimiter,
    make_rate_limiter,
    redis_client,
)
from store.session import Database
from store.tables import Run
from tests.api.runs_fixtures import SPEC
from tests.security.conftest import Tenant, make_tenant
from tests.services import redis_url


def _submit(api: TestClient, t: Tenant, **headers: str) -> httpx.Response:
    body = {"dataset_id": t.dataset_id, "spec": SPEC}
    return api.post("/v1/runs", headers={**t.headers, **headers}, json=body)


@pytest.mark.parametrize("app_settings", [{"max_concurrent_runs_per_tenant": 3}], indirect=True)
def test_concurrent_run_limit(
    api: TestClient, db: Database, tenant_a: Tenant, tenant_b: Tenant, sent: list[str]
) -> None:
    # Each tenant already has one queued run (and one succeeded, which does not count).
    first = _submit(api, tenant_a, **{"Idempotency-Key": "k1"})
    assert first.status_code == 202
    assert _submit(api, tenant_a).status_code == 202
    with db.read_session() as session:
        before = session.query(Run).count()
    sent.clear()
    over = _submit(api, tenant_a)
    assert over.status_code == 429, over.text
    assert int(over.headers["Retry-After"]) >= 1
    error = over.json()["error"]
    assert error["code"] == "too_many_runs" and error["details"]["limit"] == 3
    assert "limit is 3" in error["message"]
    with db.read_session() as session:
        assert session.query(Run).count() == before
    assert sent == []
    # A retry of an accepted request is a replay, not a new run: still 202.
    again = _submit(api, tenant_a, **{"Idempotency-Key": "k1"})
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    # Tenant B is not affected.
    assert _submit(api, tenant_b).status_code == 202
    # Cancelling a queued run frees a slot.
    cancel = api.post(f"/v1/runs/{tenant_a.queued_run_id}/cancel", headers=tenant_a.headers)
    assert cancel.status_code == 202
    assert _submit(api, tenant_a).status_code == 202


@pytest.fixture
def app_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    update = getattr(request, "param", {})
    return settings.model_copy(update=update)


@pytest.mark.parametrize("app_settings", [{"rate_limit_per_minute": 5}], indirect=True)
def test_request_rate_limit_per_tenant(
    api: TestClient, db: Database, app_settings: Settings
) -> None:
    # Tenants built with the limiter of another app, so their setup does not spend the budget.
    from api.app import create_app

    setup = TestClient(
        create_app(app_settings.model_copy(update={"rate_limit_per_minute": 1000}), database=db)
    )
    a = make_tenant(setup, db, app_settings, "rate-a")
    b = make_tenant(setup, db, app_settings, "rate-b")
    for _ in range(5):
        assert api.get("/v1/datasets", headers=a.headers).status_code == 200
    limited = api.get(f"/v1/runs/{a.run_id}", headers=a.headers)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limited"
    # Another key of the same tenant shares the budget; other tenants do not.
    assert api.get("/v1/datasets", headers=b.headers).status_code == 200
    # Unauthenticated requests are answered 401 (never counted against anyone).
    assert api.get("/v1/datasets").status_code == 401
    assert api.get("/healthz").status_code == 200


def test_token_bucket_refills() -> None:
    now = [1000.0]
    limiter = TokenBucketLimiter(60, clock=lambda: now[0])
    tenant, other = uuid.uuid4(), uuid.uuid4()
    for _ in range(60):
        limiter.hit(tenant)
    with pytest.raises(RateLimited) as caught:
        limiter.hit(tenant)
    assert caught.value.retry_after == 1 and caught.value.status_code == 429
    limiter.hit(other)
    now[0] += 1.0  # one token back
    limiter.hit(tenant)
    with pytest.raises(RateLimited):
        limiter.hit(tenant)
    now[0] += 3600
    for _ in range(60):
        limiter.hit(tenant)  # never more than the capacity


def _redis() -> redis.Redis:
    """The tests' Redis, database 0 (keys under a prefix of the test's own)."""
    return redis.Redis.from_url(redis_url(0), socket_timeout=1, socket_connect_timeout=1)


def test_redis_window_is_shared_between_processes() -> None:
    """Two limiters on one Redis (two API processes) spend one budget per tenant."""
    client = _redis()
    prefix = f"descent:test:{uuid.uuid4().hex}"
    now = [60.0 * 1_000_000 + 10.0]
    try:
        one = RedisWindowLimiter(client, 4, clock=lambda: now[0], prefix=prefix)
        two = RedisWindowLimiter(client, 4, clock=lambda: now[0], prefix=prefix)
        tenant, other = uuid.uuid4(), uuid.uuid4()
        for limiter in (one, two, one, two):
            limiter.hit(tenant)
        with pytest.raises(RateLimited) as caught:
            two.hit(tenant)
        assert caught.value.retry_after == 50  # seconds left in the window
        one.hit(other)
        now[0] += 60  # next window
        one.hit(tenant)
        ttl = client.ttl(f"{prefix}:{tenant}:{int(now[0] // 60)}")
        assert 0 < ttl <= 65  # keys expire on their own
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_redis_leases_spend_one_budget_with_few_round_trips() -> None:
    """Three processes' limiters, leases of 3 tokens, a budget of 10 per minute: exactly 10
    requests pass however they interleave, and only a lease's first request talks to Redis."""
    client = _redis()
    prefix = f"descent:test:{uuid.uuid4().hex}"
    now = [60.0 * 2_000_000 + 5.0]
    try:
        limiters = [
            RedisWindowLimiter(client, 10, lease_size=3, clock=lambda: now[0], prefix=prefix)
            for _ in range(3)
        ]
        tenant = uuid.uuid4()
        admitted = refused = round_trips = 0
        for i in range(30):
            limiter = limiters[i % 2] if i < 20 else limiters[2]
            try:
                if not limiter.hit_local(tenant):
                    round_trips += 1
                    limiter.hit(tenant)
                admitted += 1
            except RateLimited as exc:
                refused += 1
                assert exc.retry_after == 55
        key = f"{prefix}:{tenant}:{int(now[0] // 60)}"
        reserved = int(client.get(key) or 0)
        assert admitted == 10 and refused == 20
        # The first two took leases of 3, 3, 3 and a last 1 (10 granted); the one that ran
        # out without having seen the end asked once more for nothing, as did the third:
        # 6 round trips and 18 reserved for 30 requests. A process that has seen the window
        # run dry refuses without asking again.
        assert round_trips == 6 and reserved == 18
        now[0] += 60  # a new window: a new lease
        assert limiters[0].hit_local(tenant) is False
        limiters[0].hit(tenant)
        assert limiters[0].hit_local(tenant) is True
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_redis_down_falls_back_to_the_process_bucket() -> None:
    client = redis_client("redis://127.0.0.1:1/0")  # nothing listens there
    limiter = RedisWindowLimiter(client, 2)
    tenant = uuid.uuid4()
    start = time.monotonic()
    limiter.hit(tenant)
    limiter.hit(tenant)
    with pytest.raises(RateLimited):
        limiter.hit(tenant)
    assert time.monotonic() - start < 1.0  # no retry loop; Redis is skipped after one failure
    client.close()


def test_limiter_kind_follows_the_broker(settings: Settings) -> None:
    assert isinstance(make_rate_limiter(settings), TokenBucketLimiter)
    redis_limiter = make_rate_limiter(
        settings.model_copy(update={"broker_url": redis_url(0, ensure=False)})
    )
    assert isinstance(redis_limiter, RedisWindowLimiter)
    redis_limiter.close()


def test_redis_leases_on_the_event_loop_share_one_reservation() -> None:
    """hit_async, as the API calls it: 16 concurrent requests on each of two processes' loops
    spend one budget of 50 exactly, and the requests that find a lease spent wait for the one
    reservation in flight instead of each making their own."""
    client = _redis()
    prefix = f"descent:test:{uuid.uuid4().hex}"
    tenant = uuid.uuid4()
    reservations = 0

    def limiter() -> RedisWindowLimiter:
        lim = RedisWindowLimiter(
            client, 50, lease_size=5, prefix=prefix,
            async_client=lambda: redis_client(redis_url(0), asynchronous=True),
        )  # fmt: skip
        reserve = lim._reserve_async

        async def counted(c: object, key: str) -> int:
            nonlocal reservations
            reservations += 1
            return await reserve(c, key)

        lim._reserve_async = counted  # type: ignore[method-assign,assignment]
        return lim

    async def requests(lim: RedisWindowLimiter) -> list[bool]:
        async def one() -> bool:
            await asyncio.sleep(0)
            try:
                if not lim.hit_local(tenant):
                    await lim.hit_async(tenant)
                return True
            except RateLimited:
                return False

        return await asyncio.gather(*(one() for _ in range(40)))

    async def both() -> list[bool]:
        one, two = limiter(), limiter()
        return [*await requests(one), *await requests(two)]

    try:
        outcomes = asyncio.run(both())
        assert sum(outcomes) == 50 and len(outcomes) - sum(outcomes) == 30
        # 10 leases of 5, plus at most one empty-handed try per process.
        assert 10 <= reservations <= 12, reservations
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
