"""/v1/sweeps: thin routes over core.sweeps."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import EnqueueDep, PrincipalDep, ReaderDep, SettingsDep, WriteSession
from api.queries import PageQuery
from api.schemas import ErrorResponse
from api.sweep_schemas import SweepIn, SweepOut, SweepPage, SweepSummaryOut
from core import sweeps
from store.tables import SweepMode

router = APIRouter(
    prefix="/v1/sweeps",
    tags=["sweeps"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
        429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"},
    },
)

_404: dict[str, Any] = {"model": ErrorResponse, "description": "No such sweep (or not yours)"}


@router.post(
    "",
    status_code=202,
    responses={
        400: {"model": ErrorResponse, "description": "Body is not parsable JSON"},
        413: {"model": ErrorResponse, "description": "Body over the JSON size cap"},
        422: {
            "model": ErrorResponse,
            "description": "Invalid search space, metric or early termination, unknown dataset, "
            "or a trial whose spec is invalid (details: trial, params, field)",
        },
    },
)
def submit_sweep(
    body: SweepIn,
    principal: PrincipalDep,
    session: WriteSession,
    settings: SettingsDep,
    enqueue: EnqueueDep,
) -> SweepOut:
    board = sweeps.submit_sweep(
        session,
        tenant_id=principal.tenant_id,
        dataset_id=body.dataset_id,
        name=body.name,
        spec=body.spec,
        method=body.search.method,
        space=body.search.space,
        n_trials=body.search.n_trials,
        seed=body.search.seed,
        metric=body.metric,
        mode=None if body.mode is None else SweepMode(body.mode),
        max_parallel=body.max_parallel,
        early_termination=(
            None if body.early_termination is None else body.early_termination.model_dump()
        ),
        settings=settings,
        enqueue=enqueue,
    )
    return SweepOut.of(board)


@router.get("", responses={400: {"model": ErrorResponse, "description": "Not a cursor we issued"}})
async def list_sweeps(
    principal: PrincipalDep, read: ReaderDep, query: Annotated[PageQuery, Query()]
) -> SweepPage:
    page = await read(
        lambda conn: sweeps.list_sweeps(
            conn, tenant_id=principal.tenant_id, limit=query.limit, cursor=query.cursor
        )
    )
    return SweepPage(
        items=[SweepSummaryOut.from_row(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get("/{sweep_id:uuid}", responses={404: _404})
async def get_sweep(sweep_id: uuid.UUID, principal: PrincipalDep, read: ReaderDep) -> SweepOut:
    board = await read(
        lambda conn: sweeps.get_sweep(conn, tenant_id=principal.tenant_id, sweep_id=sweep_id)
    )
    return SweepOut.of(board)


@router.post(
    "/{sweep_id:uuid}/cancel",
    status_code=202,
    responses={404: _404, 409: {"model": ErrorResponse, "description": "Already finished"}},
)
def cancel_sweep(
    sweep_id: uuid.UUID, principal: PrincipalDep, session: WriteSession
) -> SweepSummaryOut:
    sweep = sweeps.cancel_sweep(session, tenant_id=principal.tenant_id, sweep_id=sweep_id)
    return SweepSummaryOut.from_row(sweep)
