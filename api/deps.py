"""Request dependencies: settings, database sessions, the calling tenant and its rate limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core import auth
from core.broker import Enqueuer
from core.config import Settings
from core.limits import RateLimiter, make_rate_limiter
from core.predictions import ModelCache
from store.session import Database

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer dsk_...`")


# Getters of app state are `async def`: a plain `def` dependency costs a thread-pool hop.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def write_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """For routes that change state; the core function commits. SQLite: BEGIN IMMEDIATE."""
    with db.session() as session:
        yield session


def read_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.read_session() as session:
        yield session


_limiter_lock = threading.Lock()


async def get_rate_limiter(request: Request) -> RateLimiter:
    """One limiter per app, built on first use (Redis-backed when the broker is Redis)."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(state, "rate_limiter", None)
            if limiter is None:
                limiter = make_rate_limiter(state.settings)
                state.rate_limiter = limiter
    return limiter


def _authenticate(db: Database, key: str | None) -> auth.Principal:
    # Own short read transaction: never the route's session, so a write route does not take
    # the SQLite write lock before it has parsed its input.
    with db.read_session() as session:
        return auth.authenticate(session, key)


async def current_principal(
    request: Request,
    db: Annotated[Database, Depends(get_database)],
    limiter: Annotated[RateLimiter, Depends(get_rate_limiter)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> auth.Principal:
    """The caller's tenant (401 otherwise), counted against its request rate (429 past it).
    Every /v1 route depends on this, so authentication and the rate limit live here only.
    A key checked recently is taken from the process's PrincipalCache without a database read."""
    key = credentials.credentials if credentials else None
    cache: auth.PrincipalCache = request.app.state.principal_cache
    digest, principal = cache.get(key)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, db, key)
        cache.put(digest, principal)
    if limiter.in_process:
        limiter.hit(principal.tenant_id)
    else:
        await run_in_threadpool(limiter.hit, principal.tenant_id)
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
WriteSession = Annotated[Session, Depends(write_session)]
ReadSession = Annotated[Session, Depends(read_session)]
PrincipalDep = Annotated[auth.Principal, Depends(current_principal)]


async def get_enqueue(request: Request) -> Enqueuer:
    """Sends a run id to the workers by task name (the web process imports no worker code)."""
    enqueue: Enqueuer = request.app.state.enqueue
    return enqueue


async def get_model_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


EnqueueDep = Annotated[Enqueuer, Depends(get_enqueue)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
