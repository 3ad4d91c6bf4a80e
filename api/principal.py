"""Who is calling: the one definition of request authentication and the per-tenant request rate.

The edge middleware (api.middleware) calls :func:`authorize` before a byte of the body is read;
the ``current_principal`` dependency reads what it found. Both take app state at request time
(tests swap the principal cache on a built app).
"""

from __future__ import annotations

import threading

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from core import auth, web_sessions
from core.limits import RateLimiter, make_rate_limiter
from store.session import Database

# Where the middleware leaves the principal: ``scope["state"]``, which Starlette exposes as
# ``request.state`` to the routes.
SCOPE_KEY = "principal"

_limiter_lock = threading.Lock()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; None for any other header."""
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def rate_limiter(state: State) -> RateLimiter:
    """One limiter per app, built on first use (Redis-backed when the broker is Redis)."""
    limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(state, "rate_limiter", None)
            if limiter is None:
                limiter = make_rate_limiter(state.settings)
                state.rate_limiter = limiter
    return limiter


def _lookup(db: Database, key: str | None) -> auth.Principal:
    # Own short read transaction: never the route's session, so a write route does not take
    # the SQLite write lock before it has parsed its input. ``auth.authenticate`` is looked up
    # on the module at call time (tests count the database lookups through it).
    with db.read_session() as session:
        return auth.authenticate(session, key)


def _session_lookup(db: Database, token: str | None) -> web_sessions.SignedIn:
    with db.read_session() as session:
        return web_sessions.signed_in(session, token)


async def signed_in(state: State, session_token: str | None) -> web_sessions.SignedIn:
    """The dashboard sign-in a session cookie stands for (Unauthorized otherwise)."""
    return await run_in_threadpool(_session_lookup, state.db, session_token)


async def authorize(
    state: State,
    authorization: str | None,
    *,
    session_token: str | None = None,
    method: str = "GET",
    csrf_token: str | None = None,
) -> auth.Principal:
    """The caller's tenant (Unauthorized otherwise), counted against its request rate
    (RateLimited past it). A key checked recently comes from the process's PrincipalCache: no
    database read and no thread-pool hop, which keeps the predict path cheap.

    Without an Authorization header, the dashboard's session cookie stands in for the key; a
    state-changing call made with it must also carry the session's CSRF token."""
    if authorization is None and session_token is not None:
        signed = await signed_in(state, session_token)
        web_sessions.check_csrf(method, signed.csrf_token, csrf_token)
        principal = signed.principal
    else:
        key = bearer_key(authorization)
        cache: auth.PrincipalCache = state.principal_cache
        digest, cached = cache.get(key)
        if cached is None:
            cached = await run_in_threadpool(_lookup, state.db, key)
            cache.put(digest, cached)
        principal = cached
    limiter = rate_limiter(state)
    if not limiter.hit_local(principal.tenant_id):
        await limiter.hit_async(principal.tenant_id)
    return principal
