"""/v1/runs: thin routes over core.runs."""

from __future__ import annotations

import uuid
from re import Match
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from api.deps import (
    EnqueueDep,
    PrincipalDep,
    Reader,
    ReaderDep,
    ReadSession,
    SettingsDep,
    WriteSession,
    json_response,
    path_uuid,
)
from api.queries import HistoryQuery, RunListQuery, listing_at_edge, parse_query
from api.schemas import (
    MAX_EPOCH,
    MAX_WAIT_SECONDS,
    CancelOut,
    EpochOut,
    ErrorResponse,
    HistoryOut,
    RunIn,
    RunOut,
    RunPage,
    ValidateOut,
)
from core import runs
from core.auth import Principal
from core.runs import events
from store.tables import FINISHED_RUN_STATUSES, RunStatus

# Every /v1 route counts against the tenant's request rate (api.deps.current_principal).
router = APIRouter(
    prefix="/v1/runs",
    tags=["runs"],
    responses={429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"}},
)

_401: dict[str, Any] = {"model": ErrorResponse, "description": "Missing or invalid API key"}
_404: dict[str, Any] = {"model": ErrorResponse, "description": "No such run (or not yours)"}
_422: dict[str, Any] = {"model": ErrorResponse, "description": "Invalid spec (names the field)"}
_422_body: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "Invalid spec, unknown dataset or model, or a warm-start model that does not "
    "fit the dataset and spec (details.field: spec.<field>, dataset_id or init_from_model_id)",
}
_400: dict[str, Any] = {"model": ErrorResponse, "description": "Body is not parsable JSON"}
_400_cursor: dict[str, Any] = {"model": ErrorResponse, "description": "Not a cursor we issued"}
_413: dict[str, Any] = {"model": ErrorResponse, "description": "Body over the JSON size cap"}


@router.post(
    "",
    status_code=202,
    responses={
        400: _400,
        401: _401,
        409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another body"},
        413: _413,
        422: _422_body,
        429: {"model": ErrorResponse, "description": "Too many live runs, or rate limited"},
    },
)
def submit_run(
    body: RunIn,
    principal: PrincipalDep,
    session: WriteSession,
    settings: SettingsDep,
    enqueue: EnqueueDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> RunOut:
    run = runs.submit_run(
        session,
        tenant_id=principal.tenant_id,
        dataset_id=body.dataset_id,
        spec=body.spec,
        name=body.name,
        settings=settings,
        enqueue=enqueue,
        idempotency_key=idempotency_key,
        init_model_id=body.init_from_model_id,
    )
    return RunOut.from_row(run)


@router.post("/validate", responses={400: _400, 401: _401, 413: _413, 422: _422_body})
def validate_run(
    body: RunIn, principal: PrincipalDep, session: ReadSession, settings: SettingsDep
) -> ValidateOut:
    check = runs.validate_run(
        session,
        tenant_id=principal.tenant_id,
        dataset_id=body.dataset_id,
        spec=body.spec,
        settings=settings,
        init_model_id=body.init_from_model_id,
    )
    return ValidateOut(
        spec=check.spec.model_dump(mode="json"),
        n_parameters=check.n_parameters,
        flops_per_epoch=check.flops_per_epoch,
        estimated_seconds=check.estimated_seconds,
        warnings=check.warnings,
    )


@router.get("", responses={400: _400_cursor, 401: _401, 422: _422})
async def list_runs(
    principal: PrincipalDep, read: ReaderDep, query: Annotated[RunListQuery, Query()]
) -> RunPage:
    return await _run_page(read, principal, query)


async def _run_page(read: Reader, principal: Principal, query: RunListQuery) -> RunPage:
    page = await read(
        lambda conn: runs.list_runs(
            conn, tenant_id=principal.tenant_id, limit=query.limit, cursor=query.cursor,
            status=query.status, dataset_id=query.dataset_id, sweep_id=query.sweep_id,
        )
    )  # fmt: skip
    return RunPage(items=[RunOut.from_row(r) for r in page.items], next_cursor=page.next_cursor)


list_runs_at_edge = listing_at_edge(RunListQuery, _run_page)


@router.get("/{run_id:uuid}", responses={401: _401, 404: _404})
async def get_run(
    run_id: uuid.UUID,
    request: Request,
    principal: PrincipalDep,
    wait_seconds: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Long poll: answer as soon as the run has an epoch after `after_epoch` "
            "or is final, or after this many seconds",
        ),
    ] = None,
    after_epoch: Annotated[
        int | None,
        Query(ge=0, le=MAX_EPOCH, description="With wait_seconds (default: the current epoch)"),
    ] = None,
) -> RunOut:
    state = request.app.state
    if wait_seconds is None:
        run = await events.current_run(state.db, tenant_id=principal.tenant_id, run_id=run_id)
    else:
        run = await events.long_poll(
            state.run_watch,
            state.db,
            tenant_id=principal.tenant_id,
            run_id=run_id,
            wait_seconds=wait_seconds,
            after_epoch=after_epoch,
        )
    return RunOut.from_row(run)


async def get_run_at_edge(
    request: Request, principal: Principal, params: Match[str]
) -> Response | None:
    if request.scope["query_string"]:
        return None  # a long poll, or parameters FastAPI should check
    run_id = path_uuid(params[1])
    run = await events.current_run(
        request.app.state.db, tenant_id=principal.tenant_id, run_id=run_id
    )
    out = RunOut.from_row(run)
    finished = RunStatus(out.status) in FINISHED_RUN_STATUSES
    if finished:
        request.app.state.read_cache.run_is_final(principal.tenant_id, run_id)
    return json_response(out, finished=finished)


@router.get("/{run_id:uuid}/history", responses={401: _401, 404: _404})
async def get_history(
    run_id: uuid.UUID,
    principal: PrincipalDep,
    read: ReaderDep,
    query: Annotated[HistoryQuery, Query()],
) -> HistoryOut:
    return await _history(read, principal, run_id, query)


async def get_history_at_edge(
    request: Request, principal: Principal, params: Match[str]
) -> Response | None:
    query = parse_query(request, HistoryQuery)
    if query is None:
        return None
    read, run_id = Reader(request.app.state.db), path_uuid(params[1])
    history = await _history(read, principal, run_id, query)
    # The history of a run this process has seen final is final too (api.read_cache).
    finished = request.app.state.read_cache.known_final(principal.tenant_id, run_id)
    return json_response(history, finished=finished)


async def _history(
    read: Reader, principal: Principal, run_id: uuid.UUID, query: HistoryQuery
) -> HistoryOut:
    rows = await read(
        lambda conn: runs.get_history(
            conn, tenant_id=principal.tenant_id, run_id=run_id, since_epoch=query.since_epoch,
            max_points=query.max_points,
        )
    )  # fmt: skip
    return HistoryOut(run_id=run_id, epochs=[EpochOut.from_row(r) for r in rows])


@router.post(
    "/{run_id:uuid}/cancel",
    status_code=202,
    responses={
        401: _401,
        404: _404,
        409: {"model": ErrorResponse, "description": "The run has already finished"},
    },
)
def cancel_run(
    run_id: uuid.UUID, principal: PrincipalDep, session: WriteSession, settings: SettingsDep
) -> CancelOut:
    status = runs.cancel_run(session, tenant_id=principal.tenant_id, run_id=run_id)
    # Committed: news for the clients following it (cancelling, or cancelled if it was queued).
    events.make_publisher(settings)(run_id)
    return CancelOut(status=status.value)
