"""/v1/models: metadata, weights download, predict."""

from __future__ import annotations

import uuid
from re import Match
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from api.deps import (
    PrincipalDep,
    Reader,
    ReaderDep,
    ReadSession,
    is_multipart,
    json_response,
    path_uuid,
    read_body,
)
from api.queries import ModelListQuery, listing_at_edge
from api.schemas import ErrorResponse, ModelOut, ModelPage, PredictOut
from core import metrics, predictions
from core.auth import Principal
from core.config import Settings
from core.datasets.images import MAX_PREDICT_IMAGES
from core.predict_batch import PredictBatcher
from core.predict_body import parse_predict_body
from core.predictions import ModelCache
from store.session import Database

# Every /v1 route counts against the tenant's request rate (api.deps.current_principal).
router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses={429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"}},
)

_401: dict[str, Any] = {"model": ErrorResponse, "description": "Missing or invalid API key"}
_404: dict[str, Any] = {"model": ErrorResponse, "description": "No such model (or not yours)"}
_400_cursor: dict[str, Any] = {"model": ErrorResponse, "description": "Not a cursor we issued"}
_409: dict[str, Any] = {"model": ErrorResponse, "description": "The model is not ready"}
# Above this many rows the forward pass runs in a worker thread, off the event loop.
_INLINE_ROWS = 1_000

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Image models: one or more PNG/JPEG pictures",
                        }
                    },
                }
            },
        },
    }
}


@router.get("", responses={400: _400_cursor, 401: _401})
async def list_models(
    principal: PrincipalDep, read: ReaderDep, query: Annotated[ModelListQuery, Query()]
) -> ModelPage:
    return await _model_page(read, principal, query)


async def _model_page(read: Reader, principal: Principal, query: ModelListQuery) -> ModelPage:
    page = await read(
        lambda conn: predictions.list_models(
            conn, tenant_id=principal.tenant_id, limit=query.limit, cursor=query.cursor,
            run_id=query.run_id, dataset_id=query.dataset_id,
        )
    )  # fmt: skip
    items = [ModelOut.model_validate(r) for r in page.items]
    return ModelPage(items=items, next_cursor=page.next_cursor)


list_models_at_edge = listing_at_edge(ModelListQuery, _model_page)


@router.get("/{model_id:uuid}", responses={401: _401, 404: _404})
async def get_model(model_id: uuid.UUID, principal: PrincipalDep, read: ReaderDep) -> ModelOut:
    return await _model_out(read, principal, model_id)


async def get_model_at_edge(request: Request, principal: Principal, params: Match[str]) -> Response:
    model_id = path_uuid(params[1])
    model = await _model_out(Reader(request.app.state.db), principal, model_id)
    return json_response(model, finished=True)  # a model never changes


async def _model_out(read: Reader, principal: Principal, model_id: uuid.UUID) -> ModelOut:
    row = await read(
        lambda conn: predictions.get_model(conn, tenant_id=principal.tenant_id, model_id=model_id)
    )
    return ModelOut.model_validate(row)


@router.get(
    "/{model_id:uuid}/weights",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The model as .npz (numpy.load(..., allow_pickle=False))",
        },
        401: _401,
        404: _404,
        409: _409,
    },
)
def get_weights(model_id: uuid.UUID, principal: PrincipalDep, session: ReadSession) -> Response:
    row = predictions.get_weights(session, tenant_id=principal.tenant_id, model_id=model_id)
    return Response(
        content=row.blob,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="model-{model_id}.npz"',
            "ETag": f'"{row.weights_sha256}"',
        },
    )


async def _image_files(request: Request) -> list[tuple[str, bytes]]:
    """The ``file`` parts of a multipart predict (an image model's pictures)."""
    form = await request.form(max_files=MAX_PREDICT_IMAGES, max_fields=0)
    parts = [p for p in form.getlist("file") if isinstance(p, UploadFile)]
    return [(p.filename or f"file {i}", await p.read()) for i, p in enumerate(parts)]


@router.post(
    "/{model_id:uuid}/predict",
    response_model=PredictOut,
    openapi_extra=PREDICT_BODY,
    responses={
        400: {"model": ErrorResponse, "description": "Malformed JSON"},
        401: _401,
        404: _404,
        409: _409,
        413: {"model": ErrorResponse, "description": "Too many rows, or a body over the cap"},
        422: {"model": ErrorResponse, "description": "Inputs do not fit the model"},
    },
)
async def predict(model_id: uuid.UUID, request: Request, principal: PrincipalDep) -> Response:
    return await predict_response(request, principal.tenant_id, model_id)


async def predict_at_edge(request: Request, principal: Principal, params: Match[str]) -> Response:
    """``POST /v1/models/{id}/predict`` routed by the edge (api.fast_routes)."""
    return await predict_response(request, principal.tenant_id, path_uuid(params[1]))


async def predict_response(
    request: Request, tenant_id: uuid.UUID, model_id: uuid.UUID, extra: dict[str, Any] | None = None
) -> Response:
    """Predict with one model; ``extra`` joins the answer (the registry's name and version).
    The hot path of the API: app state is read directly rather than through one dependency
    each, since every dependency FastAPI resolves costs a few microseconds per request."""
    state = request.app.state
    db: Database = state.db
    cache: ModelCache = state.model_cache
    settings: Settings = state.settings
    multipart = is_multipart(request)
    body = b"" if multipart else await read_body(request)
    cached = cache.get(model_id)
    if cached is not None and cached.tenant_id == tenant_id:
        model = cached.model
    else:
        model = await anyio.to_thread.run_sync(
            lambda: predictions.load_for_predict(
                db.read_session, cache, tenant_id=tenant_id, model_id=model_id
            )
        )
    if multipart:
        files = await _image_files(request)
        X = await anyio.to_thread.run_sync(
            lambda: predictions.image_inputs(
                db.read_session,
                tenant_id=tenant_id,
                model_id=model_id,
                files=files,
                settings=settings,
            )
        )
    else:
        X = parse_predict_body(body, model, settings)
    if X.shape[0] > _INLINE_ROWS:
        result = await anyio.to_thread.run_sync(lambda: predictions.predict(model, X))
    else:
        batcher: PredictBatcher = state.predict_batcher
        result = await batcher.predict(model, X)
    metrics.record_predicted_rows(X.shape[0])
    return Response(
        content=predictions.predict_json(model_id, result, extra), media_type="application/json"
    )
