"""The hot paths, routed at the edge: predict by model id, by alias and by version.

The edge middleware has already authenticated these requests, counted them against the
tenant's rate and bounded their bodies; for these few paths it calls the handler itself,
skipping FastAPI's route matching and dependency solving, which cost a 1-row predict about as
much as the forward pass (profiled: a third of a predict's time, of 30 routes matched in order).
The FastAPI routes stay: they publish the OpenAPI document, and they serve an app assembled
without the edge and any path these patterns do not take (an id or a name FastAPI should
refuse with its own 404 or 422).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response
from starlette.convertors import UUIDConvertor

from api.routes import models, registry
from core.auth import Principal

EdgeHandler = Callable[[Request, Principal, re.Match[str]], Awaitable[Response]]


@dataclass(frozen=True)
class EdgeRoute:
    pattern: re.Pattern[str]
    handler: EdgeHandler
    # The FastAPI route's template: left in scope["route"] for the request metrics' label.
    path_format: str


_UUID = UUIDConvertor.regex
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # core.registry's rule for names and aliases
_VERSION = r"[1-9][0-9]{0,8}"  # below the route's 2**31 - 1

_ROUTES = (
    EdgeRoute(
        re.compile(rf"/v1/models/({_UUID})/predict"),
        models.predict_at_edge,
        "/v1/models/{model_id}/predict",
    ),
    EdgeRoute(
        re.compile(rf"/v1/registry/({_NAME})/aliases/({_NAME})/predict"),
        registry.predict_by_alias_at_edge,
        "/v1/registry/{name}/aliases/{alias}/predict",
    ),
    EdgeRoute(
        re.compile(rf"/v1/registry/({_NAME})/versions/({_VERSION})/predict"),
        registry.predict_by_version_at_edge,
        "/v1/registry/{name}/versions/{version}/predict",
    ),
)


def fast_route(method: str, path: str) -> tuple[EdgeRoute, re.Match[str]] | None:
    """The edge route of a request and its path parameters, if it is one of the hot paths."""
    if method != "POST" or not path.endswith("/predict"):
        return None
    for route in _ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None:
            return route, match
    return None
