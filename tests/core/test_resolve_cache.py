"""The registry's per-process alias cache: fresh answers are used as they are, older ones are
used while one caller refreshes them, and none older than the promised second is ever used."""

from __future__ import annotations

import uuid

from core.registry import RESOLVE_MAX_AGE_SECONDS, ResolveCache, Resolved


def test_fresh_then_due_then_gone() -> None:
    now = [100.0]
    cache = ResolveCache(fresh=0.25, max_age=0.75, clock=lambda: now[0])
    key = (uuid.uuid4(), "digits", "production", None)
    answer = Resolved(model_id=uuid.uuid4(), version=3)
    assert cache.get(key) == (None, True)
    cache.put(key, answer)
    assert cache.get(key) == (answer, False)
    now[0] += 0.5
    assert cache.get(key) == (answer, True)  # used, and due a refresh
    assert cache.claim_refresh(key) is True
    assert cache.claim_refresh(key) is False  # one refresh in flight, not one per request
    now[0] += 0.3
    assert cache.get(key) == (None, True)  # past max_age: never used
    cache.put(key, answer)
    assert cache.claim_refresh(key) is True  # put ended the refresh
    cache.forget(key)
    assert cache.get(key) == (None, True)
    assert RESOLVE_MAX_AGE_SECONDS < 1.0  # API.md: a move is used everywhere within a second
