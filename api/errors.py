"""The one place errors become HTTP responses: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from api import ui
from core.errors import MAX_LISTED_ERRORS, DependencyDown, DescentError, field_path

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_format",
}
# The methods a route may have, in the order an Allow header lists them (OPTIONS is answered
# for every path, never routed).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class BodyTooLarge(StarletteHTTPException):
    """Raised from the edge middleware's ``receive`` once a body passes its cap (api.middleware).
    An HTTPException so that FastAPI lets it through when it happens while FastAPI reads a JSON
    body (any other exception there becomes a 400 "error parsing the body"); rendered from
    ``error``, with the connection closed since the rest of the body is unwanted."""

    def __init__(self, error: DescentError) -> None:
        super().__init__(status_code=error.status_code, detail=error.message)
        self.error = error


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def render(exc: DescentError) -> JSONResponse:
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)


def _field_path(loc: tuple[Any, ...]) -> tuple[str, str]:
    location = str(loc[0]) if loc else "body"
    return location, field_path(loc[1:])


async def _descent_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DescentError)
    if exc.status_code >= 500:
        log.warning("%s: %s", exc.code, exc.message)
    return render(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    errors = []
    for err in found[:MAX_LISTED_ERRORS]:
        location, path = _field_path(tuple(err.get("loc", ())))
        errors.append({"location": location, "field": path, "message": err.get("msg", "")})
    first = errors[0] if errors else {"location": "body", "field": "", "message": "invalid"}
    message = f"invalid {first['location']} field {first['field']!r}: {first['message']}"
    details = {
        "field": first["field"],
        "location": first["location"],
        "errors": errors,
        "error_count": len(found),
    }
    return error_response(422, "invalid_input", message, details)


def _unparsable_body(exc: StarletteHTTPException) -> JSONResponse | None:
    """FastAPI answers a body it could not parse (not UTF-8, nested past the recursion limit)
    with a bare 400; name the problem instead."""
    if exc.status_code != 400 or exc.detail != "There was an error parsing the body":
        return None
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        why = "it nests too deeply"
    elif isinstance(cause, UnicodeDecodeError):
        why = "it is not UTF-8"
    else:
        why = "it is malformed"
    return error_response(
        400, "malformed_body", f"the request body is not valid JSON: {why}", {"location": "body"}
    )


def too_large(exc: DescentError) -> JSONResponse:
    response = render(exc)
    # The rest of the body is unwanted: close the connection rather than read and discard it.
    response.headers["Connection"] = "close"
    return response


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> str:
    """Every method the request's path has, over all the routes whose path matches (Starlette
    names only the first matching route's methods, so a path served by a GET route and a DELETE
    route would advertise GET alone). Each method is tried against the routes' public
    ``matches``, which also sees through included routers."""
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def _method_not_allowed(request: Request) -> Response:
    allow = allowed_methods(request.app.router.routes, request.scope)
    if request.method == "OPTIONS":
        # Nothing routes OPTIONS: it falls through to here, on any path that exists.
        return Response(status_code=204, headers={"Allow": allow})
    return error_response(
        405,
        "method_not_allowed",
        f"method {request.method} is not allowed here; this path allows {allow}",
        {"allowed_methods": allow.split(", ")},
        headers={"Allow": allow},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyTooLarge):
        return too_large(exc.error)
    if exc.status_code == 405:
        return _method_not_allowed(request)
    unparsable = _unparsable_body(exc)
    if unparsable is not None:
        return unparsable
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _unavailable(what: str, retry_after: int) -> JSONResponse:
    return render(DependencyDown(f"{what} unavailable; retry shortly", retry_after=retry_after))


def install_error_handlers(app: FastAPI, *, retry_after: int) -> None:
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        # "database is locked" past the busy timeout, a lost connection, a full pool: the
        # client can retry, so 503 + Retry-After rather than 500.
        log.warning("database error: %s", exc)
        return _unavailable("database", retry_after)

    async def broker_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("broker error: %s", exc)
        return _unavailable("broker", retry_after)

    async def integrity(_request: Request, exc: Exception) -> JSONResponse:
        # A constraint raced by a concurrent request (unique key, deleted parent).
        log.info("integrity error: %s", exc)
        return error_response(409, "conflict", "the request conflicts with the current state")

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")

    handlers: list[tuple[type[Exception], Handler]] = [
        (DescentError, _descent_error),
        (RequestValidationError, _validation_error),
        (StarletteHTTPException, _http_error),
        (OperationalError, database_down),
        (PoolTimeoutError, database_down),
        (BrokerOperationalError, broker_down),
        (IntegrityError, integrity),
        (Exception, unexpected),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, _pages_too(handler))


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _pages_too(handler: Handler) -> Handler:
    """The same errors on a dashboard page, as a page (a 401 goes to the sign-in form)."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if isinstance(response, JSONResponse) and ui.is_page(request.url.path):
            error = orjson.loads(response.body)["error"]
            return ui.error_page(request, response.status_code, error["code"], error["message"])
        return response

    return handle
