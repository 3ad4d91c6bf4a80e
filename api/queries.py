"""Query-string models of the read routes: one definition for the FastAPI route (which
documents and validates each field as a query parameter) and for the edge (api.fast_routes),
which answers a valid query itself and leaves any other to FastAPI and its 422."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from re import Match
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.deps import Reader, json_response
from api.schemas import MAX_EPOCH
from core.auth import Principal
from core.pagination import MAX_PAGE_SIZE

Q = TypeVar("Q", bound=BaseModel)


class PageQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 50
    cursor: Annotated[str | None, Field(max_length=200)] = None


class RunListQuery(PageQuery):
    status: Annotated[str | None, Field(max_length=32)] = None
    dataset_id: uuid.UUID | None = None
    sweep_id: uuid.UUID | None = None


class ModelListQuery(PageQuery):
    run_id: uuid.UUID | None = None
    dataset_id: uuid.UUID | None = None


class HistoryQuery(BaseModel):
    since_epoch: Annotated[int, Field(ge=0, le=MAX_EPOCH)] = 0
    max_points: Annotated[int | None, Field(ge=1, le=100_000)] = None


def parse_query(request: Request, model: type[Q]) -> Q | None:
    """The request's query as ``model``; None when it does not validate (FastAPI answers)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError:
        return None


EdgeListing = Callable[[Request, Principal, Match[str]], Awaitable[Response | None]]


def listing_at_edge(
    query_type: type[Q], page: Callable[[Reader, Principal, Q], Awaitable[BaseModel]]
) -> EdgeListing:
    """The edge's handler of a list: its query parsed as ``query_type`` (or left to FastAPI),
    then the same ``page`` function the FastAPI route calls."""

    async def at_edge(request: Request, principal: Principal, _: Match[str]) -> Response | None:
        query = parse_query(request, query_type)
        if query is None:
            return None
        return json_response(await page(Reader(request.app.state.db), principal, query))

    return at_edge
