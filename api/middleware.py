"""The HTTP edge, in front of routing: who is calling, then how much body they may send.

For every ``/v1`` request (OPTIONS aside) the key in the Authorization header (or the
dashboard's session cookie, with its CSRF token) is checked and counted against the tenant's
rate before a byte of the body is read, so a request without a valid key costs what uvicorn
buffers (64 KiB) and nothing more. Then the body is bounded by its route family's cap: a
declared Content-Length over the cap is answered 413 at once, and the bytes actually received
are counted, so a chunked body (or a lying length) is cut off as soon as it passes the cap. Only
then does anything read and parse it; a request costs at most about twice its cap (the chunks,
then the joined body).

The predict paths (api.fast_routes) are then handed to their handler here, without FastAPI's
routing. A pure ASGI middleware rather than ``BaseHTTPMiddleware``: no extra task or body copy per
request, and with the key in the PrincipalCache no thread-pool hop either (predict is the hot
path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge, too_large
from api.fast_routes import fast_route
from api.principal import SCOPE_KEY, authorize
from api.uploads import MULTIPART_OVERHEAD_BYTES, multipart_boundary, upload_too_large
from core.auth import Principal
from core.config import Settings
from core.errors import DescentError, PayloadTooLarge
from core.web_sessions import COOKIE_NAME, CSRF_HEADER

API_PREFIX = "/v1/"
DATASET_UPLOAD_PATH = "/v1/datasets"
PREDICT_SUFFIX = "/predict"


def body_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body exceeds the limit of {limit} bytes",
        {"limit_bytes": limit},
        code="body_too_large",
    )


@dataclass(frozen=True)
class BodyCap:
    limit: int  # bytes on the wire
    stated: int  # the limit a client over it is told
    refusal: Callable[[int], PayloadTooLarge]
    multipart: bool = False  # the route parses multipart/form-data only

    def error(self) -> PayloadTooLarge:
        return self.refusal(self.stated)


def body_cap(method: str, path: str, settings: Settings) -> BodyCap:
    """The cap of a request's route family. Predict takes feature tables (every POST ending in
    /predict); the dataset upload streams a file to disk (api.uploads parses it, with the same
    cap); every other body is a small JSON document."""
    if method == "POST":
        if path.endswith(PREDICT_SUFFIX) and path.startswith(API_PREFIX):
            limit = settings.max_predict_body_bytes
            return BodyCap(limit, limit, body_too_large)
        if path == DATASET_UPLOAD_PATH:
            limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
            return BodyCap(limit, settings.max_upload_bytes, upload_too_large, multipart=True)
    limit = settings.max_json_body_bytes
    return BodyCap(limit, limit, body_too_large)


@dataclass
class _Headers:
    authorization: str | None = None
    content_length: str | None = None
    content_type: str | None = None
    cookie: str | None = None
    csrf_token: str | None = None

    def session_token(self) -> str | None:
        return cookie_parser(self.cookie).get(COOKIE_NAME) if self.cookie else None


_WANTED = {
    b"authorization": "authorization",
    b"content-length": "content_length",
    b"content-type": "content_type",
    b"cookie": "cookie",
    CSRF_HEADER.encode(): "csrf_token",
}


def _headers(scope: Scope) -> _Headers:
    """The few headers the edge reads, without building a Headers object."""
    found = _Headers()
    for name, value in scope["headers"]:
        field = _WANTED.get(name)
        if field is not None:
            setattr(found, field, value.decode("latin-1"))
    return found


# Methods that change nothing: any other one from a tenant forgets its cached reads.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        # The application: its state (settings, principal cache) and its exception handlers,
        # read per request.
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = _headers(scope)
        state = self.api.state
        principal: Principal | None = None
        try:
            # OPTIONS needs no key: it only says which methods a path has (CORS preflights
            # carry no credentials).
            if path.startswith(API_PREFIX) and method != "OPTIONS":
                principal = await authorize(
                    state,
                    headers.authorization,
                    session_token=headers.session_token(),
                    method=method,
                    csrf_token=headers.csrf_token,
                )
                scope.setdefault("state", {})[SCOPE_KEY] = principal
            cap = body_cap(method, path, state.settings)
            if cap.multipart:
                # A body we would never parse is refused as such (415) before its size.
                multipart_boundary(headers.content_type)
            length = headers.content_length
            if length is not None and _declared(length) > cap.limit:
                raise cap.error()
        except Exception as exc:
            # Answered without reading the body.
            await self._answer(exc, scope, receive, send)
            return

        received = 0
        fast = fast_route(method, path) if principal is not None else None
        if principal is not None and method not in _READS and not path.endswith(PREDICT_SUFFIX):
            state.read_cache.forget(principal.tenant_id)  # a predict changes nothing

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.limit:
                    raise BodyTooLarge(cap.error())
            return message

        if fast is None:
            await self.app(scope, counting_receive, send)
            return
        route, params = fast
        assert principal is not None
        scope["route"] = route
        # Only the reads are kept (api.read_cache); predict never looks.
        target = f"{path}?{scope['query_string'].decode('latin-1')}" if method == "GET" else None
        response = None if target is None else state.read_cache.get(principal.tenant_id, target)
        if response is None:
            try:
                response = await route.handler(Request(scope, counting_receive), principal, params)
            except Exception as exc:
                await self._answer(exc, scope, receive, send)
                return
            if response is None:
                await self.app(scope, counting_receive, send)
                return
            if target is not None:
                state.read_cache.keep(principal.tenant_id, target, response)
        await response(scope, receive, send)

    async def _answer(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Render ``exc`` as the app's own handlers would (this middleware sits outside them):
        401, 413, 429, and 503 for a database that is down while the key is checked."""
        if isinstance(exc, DescentError) and exc.status_code == 413:
            response: Response = too_large(exc)
        else:
            handler = _handler(self.api.exception_handlers, exc)
            if handler is None:
                raise exc  # a bug: ServerErrorMiddleware logs it and answers 500
            response = await handler(Request(scope), exc)
        await response(scope, receive, send)


def _handler(handlers: dict[Any, Callable[..., Any]], exc: Exception) -> Callable[..., Any] | None:
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _declared(content_length: str) -> int:
    # uvicorn refuses a malformed Content-Length itself; an in-process caller might not.
    try:
        return int(content_length)
    except ValueError:
        return 0
