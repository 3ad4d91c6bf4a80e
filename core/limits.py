"""Per-tenant limits, answered 429 with ``Retry-After`` (OWASP API4: unrestricted consumption).

* Concurrent runs: a tenant may hold at most ``max_concurrent_runs_per_tenant`` runs that are
  queued, running or cancelling; ``submit_run`` calls :func:`check_concurrent_runs`.
* Request rate: at most ``rate_limit_per_minute`` authenticated requests per tenant; the API's
  edge counts every request once, after authentication (:meth:`RateLimiter.hit_local`, and
  :meth:`RateLimiter.hit_async` on the event loop when that needs I/O), so the limit follows the
  key's tenant, not the client address.

With a Redis broker the rate is counted in Redis (a fixed one-minute window per tenant), so
every API process shares one budget; each process reserves tokens in small leases (INCRBY) and
spends them in memory, so a request rarely waits for Redis (see RedisWindowLimiter). Otherwise
(embedded mode, one API process) an in-process token bucket does the same job. If Redis does
not answer, the limiter falls back to the in-process bucket for a few seconds rather than
refusing traffic.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import RateLimited
from store import tenants as tenant_store

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_KEY_PREFIX = "descent:ratelimit"
_REDIS_TIMEOUT_SECONDS = 0.5
_REDIS_RETRY_SECONDS = 5.0
_MAX_BUCKETS = 100_000
_MAX_LEASE = 100


def check_concurrent_runs(session: Session, *, tenant_id: uuid.UUID, settings: Settings) -> None:
    """RateLimited (429) when the tenant already has the maximum of live runs."""
    limit = settings.max_concurrent_runs_per_tenant
    live = tenant_store.count_live_runs(session, tenant_id=tenant_id, lock=True)
    if live >= limit:
        session.rollback()
        raise RateLimited(
            f"this tenant already has {live} queued or running runs, the limit is {limit}; "
            "wait for one to finish or cancel one",
            {"limit": limit, "live_runs": live},
            code="too_many_runs",
            retry_after=settings.retry_after_seconds,
        )


class RateLimiter(Protocol):
    def hit_local(self, tenant_id: uuid.UUID) -> bool:
        """Count one request if that needs no network I/O: True when counted, False when the
        caller must call :meth:`hit` (from a worker thread); RateLimited when over budget."""

    def hit(self, tenant_id: uuid.UUID) -> None:
        """Count one request, doing I/O if it must; RateLimited when over budget."""

    async def hit_async(self, tenant_id: uuid.UUID) -> None:
        """:meth:`hit`, from an event loop."""


def _limited(limit: int, retry_after: float) -> RateLimited:
    return RateLimited(
        f"rate limit of {limit} requests per minute exceeded; retry later",
        {"limit": limit, "window_seconds": WINDOW_SECONDS},
        retry_after=max(1, math.ceil(retry_after)),
    )


class TokenBucketLimiter:
    """One bucket per tenant: ``per_minute`` tokens of capacity, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / WINDOW_SECONDS
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}  # tenant -> (tokens, at)

    def hit_local(self, tenant_id: uuid.UUID) -> bool:
        self.hit(tenant_id)
        return True

    async def hit_async(self, tenant_id: uuid.UUID) -> None:
        self.hit(tenant_id)

    def hit(self, tenant_id: uuid.UUID) -> None:
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(tenant_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * self._rate)
            if tokens < 1.0:
                self._buckets[tenant_id] = (tokens, now)
                raise _limited(self.per_minute, (1.0 - tokens) / self._rate)
            if len(self._buckets) >= _MAX_BUCKETS and tenant_id not in self._buckets:
                self._buckets.clear()  # bounded memory; full buckets are the default anyway
            self._buckets[tenant_id] = (tokens - 1.0, now)


def default_lease_size(per_minute: int) -> int:
    """Tokens taken from Redis at a time: about 2 % of the budget, so a process holding an
    unspent lease at the end of a window refuses at most that share early."""
    return max(1, min(_MAX_LEASE, per_minute // 50))


@dataclass
class _Lease:
    window: int
    tokens: int  # still to hand out in this process
    exhausted: bool  # Redis had no more for this window: refuse without asking again


class RedisWindowLimiter:
    """Fixed one-minute windows counted in Redis, shared by every API process, spent from
    local leases: a process reserves ``lease_size`` tokens at once (one INCRBY) and hands them
    out in memory, so most requests make no round trip. Reservations are capped at the limit,
    so every process together never admits more than ``per_minute`` in a window; a window's
    unspent leases lapse with it. Once Redis has run dry for a window the process refuses
    locally until the window ends."""

    def __init__(
        self,
        client: Any,
        per_minute: int,
        *,
        lease_size: int | None = None,
        fallback: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        prefix: str = REDIS_KEY_PREFIX,
        async_client: Callable[[], Any] | None = None,
    ) -> None:
        """``async_client`` makes a redis.asyncio client, for :meth:`hit_async` (called once
        per event loop); without it, hit_async runs :meth:`hit` in a worker thread."""
        self.client = client
        self._async_factory = async_client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_client: Any = None
        self._refills: dict[uuid.UUID, asyncio.Future[None]] = {}  # reservations in flight
        self.per_minute = per_minute
        self.lease_size = lease_size or default_lease_size(per_minute)
        self.fallback = fallback or TokenBucketLimiter(per_minute)
        self._clock = clock
        self._prefix = prefix
        self._down_until = 0.0  # after a Redis error, skip it for a few seconds
        self._leases: dict[uuid.UUID, _Lease] = {}
        self._lock = threading.Lock()  # the leases
        self._reserving = threading.Lock()  # one reservation at a time: no doubled leases

    def hit_local(self, tenant_id: uuid.UUID) -> bool:
        now = self._clock()
        if now < self._down_until:
            return self.fallback.hit_local(tenant_id)
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            lease = self._leases.get(tenant_id)
            if lease is None or lease.window != window:
                return False
            if lease.tokens > 0:
                lease.tokens -= 1
                return True
            if lease.exhausted:
                raise _limited(self.per_minute, (window + 1) * WINDOW_SECONDS - now)
            return False

    def hit(self, tenant_id: uuid.UUID) -> None:
        with self._reserving:
            if self.hit_local(tenant_id):  # another thread's reservation may have refilled it
                return
            now = self._clock()
            try:
                reserved = self._reserve(self._key(tenant_id, now))
            except Exception as exc:  # Redis down: limit locally rather than refuse or 500
                self._unavailable(exc, now)
                self.fallback.hit(tenant_id)
                return
            self._take_lease(tenant_id, now, reserved)

    async def hit_async(self, tenant_id: uuid.UUID) -> None:
        """:meth:`hit` for the event loop: the round trip is awaited on the loop itself (from
        a worker thread it waits for the GIL that the loop's requests hold, a switch interval
        at a time), and the requests that find the lease spent meanwhile all wait for the one
        reservation in flight rather than queueing on a lock one loop turn each (predict's p99
        was 90-140 ms, then 180-260 ms, those two ways)."""
        if self._async_factory is None:
            await anyio.to_thread.run_sync(self.hit, tenant_id)
            return
        while not self.hit_local(tenant_id):
            refill = self._refills.get(tenant_id)
            if refill is None:
                refill = asyncio.ensure_future(self._refill(tenant_id))
                self._refills[tenant_id] = refill
                refill.add_done_callback(lambda _: self._refills.pop(tenant_id, None))
            await asyncio.shield(refill)

    async def _refill(self, tenant_id: uuid.UUID) -> None:
        now = self._clock()
        try:
            reserved = await self._reserve_async(
                self._client_for_this_loop(), self._key(tenant_id, now)
            )
        except Exception as exc:
            self._unavailable(exc, now)  # the waiters go to the in-process bucket
            return
        self._take_lease(tenant_id, now, reserved, spend=False)

    def _client_for_this_loop(self) -> Any:
        # An async client belongs to one event loop (there is one per process when serving).
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            assert self._async_factory is not None
            self._loop, self._async_client = loop, self._async_factory()
            self._refills.clear()
        return self._async_client

    def _key(self, tenant_id: uuid.UUID, now: float) -> str:
        return f"{self._prefix}:{tenant_id}:{int(now // WINDOW_SECONDS)}"

    def _unavailable(self, exc: Exception, now: float) -> None:
        log.warning("rate limiter: redis unavailable (%s); in-process bucket for now", exc)
        self._down_until = now + _REDIS_RETRY_SECONDS

    def _take_lease(
        self, tenant_id: uuid.UUID, now: float, reserved: int, *, spend: bool = True
    ) -> None:
        """Keep what a reservation got (the count after it was ``reserved``), spending one
        token for the caller when ``spend`` (RateLimited if there was none)."""
        window = int(now // WINDOW_SECONDS)
        granted = max(0, min(self.lease_size, self.per_minute - (reserved - self.lease_size)))
        with self._lock:
            if len(self._leases) >= _MAX_BUCKETS and tenant_id not in self._leases:
                self._leases.clear()  # bounded memory; a lost lease only lapses early
            left = granted - 1 if spend else granted
            self._leases[tenant_id] = _Lease(
                window, max(0, left), exhausted=granted < self.lease_size
            )
        if spend and granted == 0:
            raise _limited(self.per_minute, (window + 1) * WINDOW_SECONDS - now)

    def _reserve(self, key: str) -> int:
        """Adds a lease to the window's count; returns the count after it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.incrby(key, self.lease_size)
        pipe.expire(key, WINDOW_SECONDS + 5)
        return int(pipe.execute()[0])

    async def _reserve_async(self, client: Any, key: str) -> int:
        pipe = client.pipeline(transaction=True)
        pipe.incrby(key, self.lease_size)
        pipe.expire(key, WINDOW_SECONDS + 5)
        return int((await pipe.execute())[0])

    def close(self) -> None:
        self.client.close()


def redis_client(url: str, *, asynchronous: bool = False) -> Any:
    """A client that gives up at once (no retries, short timeouts): a request waits at most
    about a second for the limiter before it falls back to the in-process bucket."""
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = _REDIS_TIMEOUT_SECONDS
    if asynchronous:
        return redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis-backed when the broker is Redis, in-process otherwise."""
    per_minute = settings.rate_limit_per_minute
    if settings.broker_url.startswith(("redis://", "rediss://")):
        url = settings.broker_url
        return RedisWindowLimiter(
            redis_client(url), per_minute, async_client=lambda: redis_client(url, asynchronous=True)
        )
    return TokenBucketLimiter(per_minute)
