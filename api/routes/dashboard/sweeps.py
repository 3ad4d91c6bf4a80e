"""Dashboard pages of sweeps: the list (newest first) and one sweep (its live leaderboard, a
chart of the metric against each searched parameter, cancel). Thin over core.sweeps."""

from __future__ import annotations

import json
import math
import uuid
from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api import ui
from api.deps import ReadSession, WriteSession
from api.routes.dashboard.deps import PageUser, check_form_post
from core import sweeps
from core.errors import Conflict
from store.tables import FINISHED_RUN_STATUSES, SweepMode, SweepStatus

router = APIRouter(prefix=f"{ui.UI}/sweeps", include_in_schema=False)

PER_PAGE = 50
LOG_DECADES = 2  # numeric values spanning this many powers of ten get a log axis


@router.get("")
def sweeps_page(
    request: Request,
    user: PageUser,
    session: ReadSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    found = sweeps.list_sweeps(
        session, tenant_id=user.principal.tenant_id, limit=PER_PAGE, cursor=cursor
    )
    return ui.page(
        request, "sweeps.html", sweeps=found.items, next_cursor=found.next_cursor, first=not cursor
    )


@router.get("/{sweep_id:uuid}")
def sweep_page(
    request: Request, sweep_id: uuid.UUID, user: PageUser, session: ReadSession
) -> Response:
    board = sweeps.get_sweep(session, tenant_id=user.principal.tenant_id, sweep_id=sweep_id)
    # htmx asks for the board alone while the sweep runs (the page polls it).
    fragment = request.headers.get("hx-request") == "true"
    names = searched(board.sweep.search)
    return ui.page(
        request,
        "_sweep_board.html" if fragment else "sweep.html",
        sweep=board.sweep,
        trials=board.trials,
        best=board.best,
        names=names,
        running=board.sweep.status == SweepStatus.running,
        # A cancelled sweep's running trial is still cancelling: followed until it has ended.
        live=board.sweep.status == SweepStatus.running
        or any(t.status not in FINISHED_RUN_STATUSES for t in board.trials),
        higher_is_better=board.sweep.mode == SweepMode.max,
        charts=json.dumps(param_charts(names, board.trials)),
    )


@router.post("/{sweep_id:uuid}/cancel")
def cancel_sweep(
    request: Request,
    sweep_id: uuid.UUID,
    user: PageUser,
    csrf_token: Annotated[str, Form(max_length=128)],
    session: WriteSession,
) -> Response:
    check_form_post(request, user, csrf_token)
    with suppress(Conflict):  # it ended meanwhile: the page shows how
        sweeps.cancel_sweep(session, tenant_id=user.principal.tenant_id, sweep_id=sweep_id)
    return RedirectResponse(f"{ui.UI}/sweeps/{sweep_id}", status_code=303)


def searched(search: dict[str, Any]) -> list[str]:
    """The dotted spec fields the sweep searched over, in the order they were given."""
    return list((search or {}).get("space") or {})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def param_charts(names: list[str], trials: list[sweeps.Trial]) -> list[dict[str, Any]]:
    """One scatter per searched parameter: ``points`` [x, metric] for each trial with a value.
    The axis comes from every trial's value (known from the start, so it does not change as
    trials finish): ``scale`` ``log`` (positive numbers spanning >= LOG_DECADES powers of ten,
    ``low``/``high`` their range), ``linear``, or ``category`` (anything else: lists, text,
    booleans; x is the index into ``ticks``, in the order the trials hold them, evenly spaced)."""
    charts = []
    ordered = sorted(trials, key=lambda t: t.trial)
    for name in names:
        values: list[Any] = [t.params.get(name) for t in ordered]
        chart: dict[str, Any] = {"name": name, "ticks": []}
        if values and all(_number(v) for v in values):
            xs = [float(v) for v in values]
            low, high = min(xs), max(xs)
            log = low > 0 and math.log10(high / low) >= LOG_DECADES
            chart.update(scale="log" if log else "linear", low=low, high=high)
        else:
            ticks = list(dict.fromkeys(ui.param_value(v) for v in values))
            chart.update(scale="category", ticks=ticks)
            xs = [float(ticks.index(ui.param_value(v))) for v in values]
        chart["points"] = sorted(
            [x, t.best_value] for x, t in zip(xs, ordered, strict=True) if t.best_value is not None
        )
        charts.append(chart)
    return charts
