"""Per-tenant limits, answered 429 with ``Retry-After`` (OWASP API4: unrestricted consumption).

* Concurrent runs: a tenant may hold at most ``max_concurrent_runs_per_tenant`` runs that are
  queued, running or cancelling; ``submit_run`` calls :func:`check_concurrent_runs`.
* Request rate: at most ``rate_limit_per_minute`` authenticated requests per tenant; the API's
  principal dependency calls :meth:`RateLimiter.hit` once per request, after authentication, so
  the limit follows the key's tenant, not the client address.

With a Redis broker the rate is counted in Redis (a fixed one-minute window per tenant: INCR +
EXPIRE), so every API process shares one budget. Otherwise (embedded mode, one API process) an
in-process token bucket does the same job. If Redis does not answer, the limiter falls back to
the in-process bucket for that request rather than refusing traffic.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

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
    # False when `hit` does network I/O (the API then calls it from a worker thread).
    in_process: bool

    def hit(self, tenant_id: uuid.UUID) -> None:
        """Count one request; RateLimited when the tenant is over its budget."""


def _limited(limit: int, retry_after: float) -> RateLimited:
    return RateLimited(
        f"rate limit of {limit} requests per minute exceeded; retry later",
        {"limit": limit, "window_seconds": WINDOW_SECONDS},
        retry_after=max(1, math.ceil(retry_after)),
    )


class TokenBucketLimiter:
    """One bucket per tenant: ``per_minute`` tokens of capacity, refilled continuously."""

    in_process = True

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / WINDOW_SECONDS
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}  # tenant -> (tokens, at)

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


class RedisWindowLimiter:
    """Fixed one-minute windows counted in Redis, shared by every API process."""

    in_process = False

    def __init__(
        self,
        client: Any,
        per_minute: int,
        *,
        fallback: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        prefix: str = REDIS_KEY_PREFIX,
    ) -> None:
        self.client = client
        self.per_minute = per_minute
        self.fallback = fallback or TokenBucketLimiter(per_minute)
        self._clock = clock
        self._prefix = prefix
        self._down_until = 0.0  # after a Redis error, skip it for a few seconds

    def hit(self, tenant_id: uuid.UUID) -> None:
        now = self._clock()
        if now < self._down_until:
            self.fallback.hit(tenant_id)
            return
        window = int(now // WINDOW_SECONDS)
        key = f"{self._prefix}:{tenant_id}:{window}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5)
            count = int(pipe.execute()[0])
        except Exception as exc:  # Redis down: limit locally rather than refuse or 500
            log.warning("rate limiter: redis unavailable (%s); using the in-process bucket", exc)
            self._down_until = now + _REDIS_RETRY_SECONDS
            self.fallback.hit(tenant_id)
            return
        if count > self.per_minute:
            raise _limited(self.per_minute, (window + 1) * WINDOW_SECONDS - now)

    def close(self) -> None:
        self.client.close()


def redis_client(url: str) -> Any:
    """A client that gives up at once (no retries, short timeouts): a request waits at most
    about a second for the limiter before it falls back to the in-process bucket."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis-backed when the broker is Redis, in-process otherwise."""
    per_minute = settings.rate_limit_per_minute
    if settings.broker_url.startswith(("redis://", "rediss://")):
        client = redis_client(settings.broker_url)
        return RedisWindowLimiter(client, per_minute)
    return TokenBucketLimiter(per_minute)
