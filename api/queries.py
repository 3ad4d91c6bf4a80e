"""Query-string models of the read routes: one definition for the FastAPI route (which
documents and validates each field as a query parameter) and for the edge (api.fast_routes),
which answers a valid query itself and leaves any other to FastAPI and its 422."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request

from api.schemas import MAX_EPOCH
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
