"""Reads of finished objects, kept by each API process for ``read_cache_seconds``.

A model never changes once written, nor does a dataset, nor a run once it is final (succeeded,
failed or cancelled) and its history, except that deleting a dataset clears the ``dataset_id``
of its runs and models. So the edge answers a repeated ``GET`` of one of them from memory, with
no thread hop and no database round trip; a run still queued or running is always read afresh
(clients poll it for progress). Entries are per tenant (the key is authenticated and
rate-counted first, as for any read); any write a tenant sends through this process forgets
that tenant's entries, so a process never serves its own stale answer, and another process's
answer is at most ``read_cache_seconds`` old (as a revoked key works for
``auth_cache_seconds``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from cachetools import LRUCache, TTLCache
from starlette.responses import Response

# Entries per process: a few MB of JSON at most.
MAX_ENTRIES = 4096


class Finished(Response):
    """A read the edge may keep: what an edge handler answers for a finished object."""

    media_type = "application/json"


class ReadCache:
    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._entries: TTLCache[tuple[uuid.UUID, int, str], bytes] = TTLCache(
            MAX_ENTRIES, ttl=max(seconds, 1e-9), timer=clock
        )
        # Bumped by a tenant's write: its older entries are never looked up again.
        self._generation: dict[uuid.UUID, int] = {}
        # Runs this process has read as final: their history is final too.
        self._final_runs: LRUCache[tuple[uuid.UUID, uuid.UUID], bool] = LRUCache(MAX_ENTRIES)

    def get(self, tenant_id: uuid.UUID, target: str) -> Response | None:
        if self.seconds <= 0:
            return None
        body = self._entries.get((tenant_id, self._generation.get(tenant_id, 0), target))
        return None if body is None else self._response(body)

    def keep(self, tenant_id: uuid.UUID, target: str, response: Response) -> Response:
        """Keep ``response`` if it is a finished object's 200, and say for how long."""
        if self.seconds > 0 and isinstance(response, Finished) and response.status_code == 200:
            key = (tenant_id, self._generation.get(tenant_id, 0), target)
            self._entries[key] = bytes(response.body)
            response.headers["cache-control"] = self._cache_control
        return response

    def run_is_final(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
        self._final_runs[(tenant_id, run_id)] = True

    def known_final(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> bool:
        """Whether this process has read the run as final (so its history will not change)."""
        return (tenant_id, run_id) in self._final_runs

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1

    @property
    def _cache_control(self) -> str:
        return f"private, max-age={int(self.seconds)}"

    def _response(self, body: bytes) -> Response:
        return Response(
            body, media_type="application/json", headers={"cache-control": self._cache_control}
        )
