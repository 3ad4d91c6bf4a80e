"""The hot paths, routed at the edge: predict (by model id, alias and version) and the reads
(a run, model or dataset, a history, the lists).

The edge middleware has already authenticated these requests, counted them against the
tenant's rate and bounded their bodies; for these few paths it calls the handler itself,
skipping FastAPI's route matching and dependency solving, which cost a 1-row predict about as
much as the forward pass (profiled: a third of a predict's time, of 30 routes matched in order).
The FastAPI routes stay, calling the same functions: they publish the OpenAPI document, and
they serve an app assembled without the edge, any path these patterns do not take (an id or a
name FastAPI should refuse with its own 404 or 422) and any query an edge handler hands back
(one FastAPI should validate, or a long poll).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response
from starlette.convertors import UUIDConvertor

from api.routes import datasets, models, registry, runs
from core.auth import Principal

# None: not for the edge after all (a query FastAPI should validate); FastAPI answers.
EdgeHandler = Callable[[Request, Principal, re.Match[str]], Awaitable[Response | None]]


@dataclass(frozen=True)
class EdgeRoute:
    pattern: re.Pattern[str]
    handler: EdgeHandler
    # The FastAPI route's template: left in scope["route"] for the request metrics' label.
    path_format: str


_UUID = UUIDConvertor.regex
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # core.registry's rule for names and aliases
_VERSION = r"[1-9][0-9]{0,8}"  # below the route's 2**31 - 1

_PREDICT_ROUTES = (
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

# The reads: each a single query, where FastAPI's routing, dependencies and response
# validation cost more than the query (profiled: 1.1 ms of CPU per GET /v1/models/{id}).
_READ_ROUTES = {
    "/v1/runs": EdgeRoute(re.compile("/v1/runs"), runs.list_runs_at_edge, "/v1/runs"),
    "/v1/datasets": EdgeRoute(
        re.compile("/v1/datasets"), datasets.list_datasets_at_edge, "/v1/datasets"
    ),
    "/v1/models": EdgeRoute(re.compile("/v1/models"), models.list_models_at_edge, "/v1/models"),
}
_READ_BY_ID = (
    EdgeRoute(re.compile(rf"/v1/runs/({_UUID})"), runs.get_run_at_edge, "/v1/runs/{run_id}"),
    EdgeRoute(
        re.compile(rf"/v1/runs/({_UUID})/history"),
        runs.get_history_at_edge,
        "/v1/runs/{run_id}/history",
    ),
    EdgeRoute(
        re.compile(rf"/v1/models/({_UUID})"), models.get_model_at_edge, "/v1/models/{model_id}"
    ),
    EdgeRoute(
        re.compile(rf"/v1/datasets/({_UUID})"),
        datasets.get_dataset_at_edge,
        "/v1/datasets/{dataset_id}",
    ),
)


def fast_route(method: str, path: str) -> tuple[EdgeRoute, re.Match[str]] | None:
    """The edge route of a request and its path parameters, if it is one of the hot paths."""
    if method == "POST" and path.endswith("/predict"):
        return _first_match(_PREDICT_ROUTES, path)
    if method != "GET":
        return None
    listing = _READ_ROUTES.get(path)
    return _first_match((listing,) if listing else _READ_BY_ID, path)


def _first_match(
    routes: tuple[EdgeRoute, ...], path: str
) -> tuple[EdgeRoute, re.Match[str]] | None:
    for route in routes:
        match = route.pattern.fullmatch(path)
        if match is not None:
            return route, match
    return None
