"""Pushed progress: ``GET /v1/runs/{id}/events`` (Server-Sent Events). Thin: the stream's
logic is ``core.runs.events.Follow``; this module turns its items into SSE frames."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import Row

from api import examples as ex
from api.deps import PrincipalDep
from api.schemas import MAX_EPOCH, EpochOut, RunError, RunStatusEvent
from core.errors import InvalidInput
from core.runs import events

router = APIRouter(prefix="/v1/runs", tags=["runs"])


def _json_error(description: str) -> dict[str, Any]:
    # Spelled out: a ``model`` here would be documented as text/event-stream, the route's type.
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _resume_point(after_epoch: int | None, last_event_id: str | None) -> int:
    """Both say "seen up to here"; the later wins. A browser's EventSource reconnects to the
    same URL (its ``after_epoch``) adding the Last-Event-ID it got to, which is further on."""
    seen = 0
    if last_event_id is not None and last_event_id.strip() != "":
        value = last_event_id.strip()
        if not value.isdigit() or int(value) > MAX_EPOCH:
            raise InvalidInput(
                f"Last-Event-ID must be an epoch number (0 to {MAX_EPOCH})",
                {"field": "Last-Event-ID", "location": "header"},
            )
        seen = int(value)
    return max(seen, after_epoch or 0)


async def _stream_start(
    run_id: uuid.UUID,
    request: Request,
    principal: PrincipalDep,
    after_epoch: Annotated[
        int | None,
        Query(ge=0, le=MAX_EPOCH, description="Replay epochs after this one (or Last-Event-ID)"),
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> events.Follow:
    """Checked before the stream starts, so a missing run is a plain 404, not a broken stream."""
    follow = events.Follow(
        watch=request.app.state.run_watch,
        db=request.app.state.db,
        tenant_id=principal.tenant_id,
        run_id=run_id,
        after_epoch=_resume_point(after_epoch, last_event_id),
    )
    await follow.check_exists()
    return follow


@router.get(
    "/{run_id:uuid}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`event: epoch` (id: the epoch; data: a history entry) for every "
            "epoch after the resume point, `event: status` (data: status, error, model_id) on "
            "every status change, a comment at least every 15 s; closes after a final status.",
            "content": {"text/event-stream": {"example": ex.EVENTS}},
        },
        401: _json_error("Missing or invalid API key"),
        404: _json_error("No such run (or not yours)"),
        422: _json_error("after_epoch or Last-Event-ID is not an epoch number"),
    },
)
async def run_events(
    follow: Annotated[events.Follow, Depends(_stream_start)],
) -> AsyncIterator[ServerSentEvent]:
    async for item in follow.items():
        yield _frame(item)


def _frame(item: Row[Any] | events.StatusNews) -> ServerSentEvent:
    if isinstance(item, events.StatusNews):
        error = RunError(**item.error) if item.error else None
        status = RunStatusEvent(status=item.status, error=error, model_id=item.model_id)
        return ServerSentEvent(event="status", data=status.model_dump(mode="json"))
    data: Any = EpochOut.from_row(item).model_dump(mode="json")
    return ServerSentEvent(event="epoch", id=str(item.epoch), data=data)
