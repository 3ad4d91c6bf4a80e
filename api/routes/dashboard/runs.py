"""Dashboard pages of runs: the list, one run, the new-run form, history as CSV, and compare."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import ui
from api.deps import ReadSession
from api.routes.dashboard.deps import PageUser
from core import datasets, predictions
from core import runs as run_service
from core.errors import InvalidInput
from core.runs.browse import browse_runs
from models.activations import ALIASES as ACTIVATION_ALIASES
from models.metrics import HISTORY_METRICS
from models.spec import Activation, OptimizerName, TrainingSpec
from store.tables import MAX_NAME_CHARS, RunStatus

router = APIRouter(prefix=f"{ui.UI}/runs", include_in_schema=False)
compare_router = APIRouter(include_in_schema=False)

MAX_COMPARED = 10
CHART_POINTS = 2000  # a 100,000-epoch run draws like a 2,000-epoch one
MAX_CHART_POINTS = 20_000
# The epoch's own columns, then every extra metric the trainer may record (models.metrics), then
# any other key an epoch's metrics hold (kept verbatim), then the schedule and the time.
_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
HISTORY_FIELDS = (
    *_COLUMNS,
    *(m for m in HISTORY_METRICS if m not in _COLUMNS),
    "learning_rate",
    "seconds",
)
_ROW_FIELDS = {*_COLUMNS, "learning_rate", "seconds"}


def _dataset_choices(session: Any, tenant_id: uuid.UUID) -> list[Any]:
    return datasets.list_datasets(session, tenant_id=tenant_id, limit=200).items


@router.get("")
def runs_page(
    request: Request,
    user: PageUser,
    session: ReadSession,
    status: Annotated[str, Query(max_length=32)] = "",
    dataset_id: Annotated[str, Query(max_length=36)] = "",
    name: Annotated[str, Query(max_length=MAX_NAME_CHARS)] = "",
    sort: Annotated[str, Query(max_length=16)] = "created",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    try:
        dataset = uuid.UUID(dataset_id) if dataset_id else None
    except ValueError:
        raise InvalidInput("dataset_id is not a UUID", {"field": "dataset_id"}) from None
    found = browse_runs(
        session,
        tenant_id=user.principal.tenant_id,
        page=page,
        sort=sort,
        status=status or None,
        dataset_id=dataset,
        name_contains=name or None,
    )
    filters = {"status": status, "dataset_id": dataset_id, "name": name, "sort": sort}
    # htmx asks for the table alone (filtering, and the refresh while runs are live).
    fragment = request.headers.get("hx-request") == "true"
    choices = [] if fragment else _dataset_choices(session, user.principal.tenant_id)
    return ui.page(
        request,
        "_runs_table.html" if fragment else "runs.html",
        runs=found,
        filters=filters,
        statuses=[s.value for s in RunStatus],
        datasets=choices,
        live=any(ui.is_active(r) for r in found.items),
    )


@router.get("/new")
def new_run_page(
    request: Request,
    user: PageUser,
    session: ReadSession,
    dataset_id: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    defaults = TrainingSpec().model_dump(mode="json")
    return ui.page(
        request,
        "new_run.html",
        datasets=_dataset_choices(session, user.principal.tenant_id),
        selected=dataset_id,
        defaults=defaults,
        # One name each: the form leaves out aliases (swish is silu).
        activations=[a for a in get_args(Activation) if a not in ACTIVATION_ALIASES],
        optimizers=get_args(OptimizerName),
    )


@router.get("/{run_id:uuid}")
def run_page(
    request: Request,
    run_id: uuid.UUID,
    user: PageUser,
    session: ReadSession,
    max_points: Annotated[int, Query(ge=2, le=MAX_CHART_POINTS)] = CHART_POINTS,
) -> Response:
    """``max_points``: how many points the charts hold at most (the history is thinned to it,
    on the server first and in the page as epochs arrive)."""
    tenant_id = user.principal.tenant_id
    run = run_service.get_run(session, tenant_id=tenant_id, run_id=run_id)
    model = (
        predictions.get_model(session, tenant_id=tenant_id, model_id=run.model_id)
        if run.model_id
        else None
    )
    return ui.page(
        request, "run.html", run=run, model=model, final=not ui.is_active(run),
        max_points=max_points,
    )  # fmt: skip


@router.get("/{run_id:uuid}/history.csv")
def history_csv(run_id: uuid.UUID, user: PageUser, session: ReadSession) -> Response:
    rows = run_service.get_history(session, tenant_id=user.principal.tenant_id, run_id=run_id)
    others = sorted({k for r in rows for k in r.metrics or {}} - set(HISTORY_FIELDS))
    fields = (*HISTORY_FIELDS, *others)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields)
    for row in rows:
        extra = row.metrics or {}
        values = (getattr(row, f) if f in _ROW_FIELDS else extra.get(f) for f in fields)
        writer.writerow(["" if v is None else v for v in values])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="history-{run_id}.csv"'},
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def differing_fields(specs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted spec fields whose values are not the same in every spec (a missing field
    counts as a difference), in name order."""
    flat = [_flatten(spec) for spec in specs]
    names = sorted(set().union(*flat))
    rows = [(n, [f.get(n) for f in flat]) for n in names]
    return [(n, values) for n, values in rows if any(v != values[0] for v in values)]


@compare_router.get(f"{ui.UI}/compare")
def compare_page(
    request: Request,
    user: PageUser,
    session: ReadSession,
    run: Annotated[list[uuid.UUID], Query()],
) -> Response:
    ids = list(dict.fromkeys(run))
    if not 1 <= len(ids) <= MAX_COMPARED:
        raise InvalidInput(
            f"pick between 1 and {MAX_COMPARED} runs to compare",
            {"field": "run", "picked": len(ids), "limit": MAX_COMPARED},
        )
    rows = [run_service.get_run(session, tenant_id=user.principal.tenant_id, run_id=i) for i in ids]
    return ui.page(
        request,
        "compare.html",
        runs=rows,
        differences=differing_fields([r.spec for r in rows]),
    )
