"""GET /metrics (Prometheus text format) and the request instrumentation behind it.

The route is the operator's, not a tenant's: it is outside /v1 (no API key), summed over every
tenant, and guarded only by ``DESCENT_METRICS_TOKEN``: when set, ``Authorization: Bearer
<token>`` is required (401 otherwise); when unset, /metrics is open to whoever reaches the port.
It is left out of the OpenAPI document (API.md describes it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from re import Pattern
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from core.config import Settings
from core.errors import Unauthorized


def install_metrics(app: FastAPI) -> None:
    """Everything /metrics needs on an app: the route and the request instrumentation. Called
    after every router is included (the route templates are read from the app's routes)."""
    settings: Settings = app.state.settings
    metrics.claim_directory(settings)
    collectors = metrics.registry(app.state.db)
    token = settings.metrics_token
    # Compared as digests: equal lengths, so the comparison time says nothing about the token.
    expected = _digest(token.get_secret_value()) if token is not None else None

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def get_metrics(request: Request) -> Response:
        # A plain def: reading the files and counting runs happens in the thread pool.
        if expected is not None and not _bearer_matches(
            request.headers.get("authorization"), expected
        ):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <metrics token>")
        body, content_type = metrics.render(collectors)
        return Response(body, media_type=content_type)

    # Added last, so outermost of the app's middleware: the edge's own answers (401, 413, 429)
    # are counted too.
    app.add_middleware(MetricsMiddleware, api=app)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _bearer_matches(header: str | None, expected: bytes) -> bool:
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(_digest(value.strip()), expected)


class RouteTemplates:
    """A request's route template, e.g. ``/v1/models/{model_id}/predict``: never the raw path,
    whose ids would make a label value per model. Routing leaves the matched route in
    ``scope["route"]`` (a dict lookup); a request answered before routing (the edge's 401) or
    by a route that does not set it (a Mount, /openapi.json) is matched against the paths."""

    def __init__(self, routes: Iterable[Any]) -> None:
        self.by_route: dict[int, str] = {}
        self.paths: list[tuple[Pattern[str], str]] = []
        for route in routes:
            template = getattr(route, "path_format", None)
            regex = getattr(route, "path_regex", None)
            if not template or regex is None:
                continue
            # The template as served (an included router's prefix and all).
            self.by_route[id(getattr(route, "original_route", route))] = template
            self.paths.append((regex, template))

    @classmethod
    def of(cls, app: FastAPI) -> RouteTemplates:
        # FastAPI >= 0.150 keeps included routers as such; iter_route_contexts flattens them.
        flatten = getattr(fastapi.routing, "iter_route_contexts", None)
        return cls(flatten(app.routes) if flatten is not None else app.routes)

    def template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            known = self.by_route.get(id(route)) or getattr(route, "path_format", None)
            if known:
                return str(known)
        path: str = scope["path"]
        for regex, template in self.paths:
            if regex.match(path):
                return template
        return metrics.UNMATCHED


class MetricsMiddleware:
    """Counts every HTTP request by method, route template and status, with its latency. Pure
    ASGI (no BaseHTTPMiddleware task or body copy): a wrapped ``send`` that notes the status,
    two clock reads, and three increments of mmap'd values per request."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.templates: RouteTemplates | None = None  # read at the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            # ServerErrorMiddleware, outside this one, answers it 500.
            status = status or 500
            raise
        finally:
            # status 0: cancelled before any answer (the client left); nothing was answered.
            if status:
                elapsed = time.perf_counter() - started
                templates = self.templates
                if templates is None:
                    templates = self.templates = RouteTemplates.of(self.api)
                metrics.record_request(scope["method"], templates.template(scope), status, elapsed)
