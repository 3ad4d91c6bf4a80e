"""/v1/datasets: thin routes over core.datasets."""

from __future__ import annotations

import uuid
from re import Match
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import examples as ex
from api.deps import (
    DatabaseDep,
    PrincipalDep,
    Reader,
    ReaderDep,
    SettingsDep,
    WriteSession,
    json_response,
    path_uuid,
)
from api.queries import PageQuery, listing_at_edge
from api.schemas import DatasetOut, DatasetPage, ErrorResponse
from api.uploads import UploadDep
from core import datasets
from core.auth import Principal
from store.tables import MAX_NAME_CHARS

# Every /v1 route counts against the tenant's request rate (api.deps.current_principal).
router = APIRouter(
    prefix="/v1/datasets",
    tags=["datasets"],
    responses={429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"}},
)

_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "No such dataset (or not yours)"},
}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV with a header (or gzipped: .csv.gz), Parquet, "
                            "JSON, NPZ with arrays X and y, or a zip whose top-level folders are "
                            "class names holding PNG/JPEG images",
                        },
                        "name": {
                            "type": "string",
                            "maxLength": MAX_NAME_CHARS,
                            "examples": ["iris"],
                        },
                        "label": {
                            "type": "string",
                            "description": "Target column (CSV/records); default: the last",
                            "examples": ["species"],
                        },
                        "image_size": {
                            "type": "integer",
                            "minimum": 4,
                            "maximum": 128,
                            "default": 32,
                            "description": "Image archives: pictures become N x N pixels",
                        },
                        "color_mode": {
                            "type": "string",
                            "enum": ["grayscale", "rgb"],
                            "default": "grayscale",
                        },
                    },
                },
                # The form fields besides the file (which no example can hold).
                "example": ex.UPLOAD_FORM,
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses={
        400: {"model": ErrorResponse, "description": "Malformed multipart body"},
        401: _errors[401],
        413: {"model": ErrorResponse, "description": "Upload over the size cap"},
        415: {"model": ErrorResponse, "description": "Unknown file format"},
        422: {"model": ErrorResponse, "description": "Bad content (names column/line/value)"},
    },
)
def create_dataset(
    upload: UploadDep, principal: PrincipalDep, session: WriteSession, settings: SettingsDep
) -> DatasetOut:
    row = datasets.create_dataset(
        session,
        tenant_id=principal.tenant_id,
        upload_path=upload.path,
        filename=upload.filename,
        content_type=upload.content_type,
        name=upload.fields.get("name"),
        label=upload.fields.get("label"),
        settings=settings,
        image_size=upload.fields.get("image_size"),
        color_mode=upload.fields.get("color_mode"),
    )
    return DatasetOut.model_validate(row)


@router.get(
    "",
    responses={
        400: {"model": ErrorResponse, "description": "Not a cursor we issued"},
        401: _errors[401],
    },
)
async def list_datasets(
    principal: PrincipalDep, read: ReaderDep, query: Annotated[PageQuery, Query()]
) -> DatasetPage:
    return await _dataset_page(read, principal, query)


async def _dataset_page(read: Reader, principal: Principal, query: PageQuery) -> DatasetPage:
    page = await read(
        lambda conn: datasets.list_datasets(
            conn, tenant_id=principal.tenant_id, limit=query.limit, cursor=query.cursor
        )
    )
    items = [DatasetOut.model_validate(r) for r in page.items]
    return DatasetPage(items=items, next_cursor=page.next_cursor)


list_datasets_at_edge = listing_at_edge(PageQuery, _dataset_page)


@router.get("/{dataset_id:uuid}", responses=_errors)
async def get_dataset(
    dataset_id: uuid.UUID, principal: PrincipalDep, read: ReaderDep
) -> DatasetOut:
    return await _dataset_out(read, principal, dataset_id)


async def get_dataset_at_edge(
    request: Request, principal: Principal, params: Match[str]
) -> Response:
    dataset_id = path_uuid(params[1])
    dataset = await _dataset_out(Reader(request.app.state.db), principal, dataset_id)
    return json_response(dataset, finished=True)  # a dataset never changes (only goes)


async def _dataset_out(read: Reader, principal: Principal, dataset_id: uuid.UUID) -> DatasetOut:
    row = await read(
        lambda conn: datasets.get_dataset(
            conn, tenant_id=principal.tenant_id, dataset_id=dataset_id
        )
    )
    return DatasetOut.model_validate(row)


@router.get(
    "/{dataset_id:uuid}/profile",
    responses={**_errors, 200: {"content": {"application/json": {"example": ex.PROFILE}}}},
)
def get_profile(dataset_id: uuid.UUID, principal: PrincipalDep, db: DatabaseDep) -> dict[str, Any]:
    """Per column: type, missing, min/max/mean/std (sample, ddof=1) or distinct count and top
    values; the label's distribution. Computed once, at upload."""
    return datasets.dataset_profile(db, tenant_id=principal.tenant_id, dataset_id=dataset_id)


@router.delete(
    "/{dataset_id:uuid}",
    status_code=204,
    response_class=Response,
    responses={**_errors, 409: {"model": ErrorResponse, "description": "Used by a live run"}},
)
def delete_dataset(dataset_id: uuid.UUID, principal: PrincipalDep, session: WriteSession) -> None:
    datasets.delete_dataset(session, tenant_id=principal.tenant_id, dataset_id=dataset_id)
