"""Dashboard pages of datasets and models."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import ui
from api.deps import DatabaseDep, ReadSession
from api.routes.dashboard.deps import PageUser
from core import datasets, predictions

router = APIRouter(include_in_schema=False)


@router.get(f"{ui.UI}/datasets")
def datasets_page(
    request: Request,
    user: PageUser,
    session: ReadSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    found = datasets.list_datasets(
        session, tenant_id=user.principal.tenant_id, limit=50, cursor=cursor
    )
    return ui.page(request, "datasets.html", datasets=found.items, next_cursor=found.next_cursor)


@router.get(f"{ui.UI}/datasets/{{dataset_id:uuid}}")
def dataset_page(
    request: Request, dataset_id: uuid.UUID, user: PageUser, session: ReadSession, db: DatabaseDep
) -> Response:
    tenant_id = user.principal.tenant_id
    row = datasets.get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    profile = datasets.dataset_profile(db, tenant_id=tenant_id, dataset_id=dataset_id)
    distribution = profile["label"].get("distribution") or []
    return ui.page(
        request,
        "dataset.html",
        dataset=row,
        profile=profile,
        class_counts=distribution,
        most=max((n for _, n in distribution), default=1),
    )


@router.get(f"{ui.UI}/models/{{model_id:uuid}}")
def model_page(
    request: Request, model_id: uuid.UUID, user: PageUser, session: ReadSession
) -> Response:
    tenant_id = user.principal.tenant_id
    row = predictions.get_model(session, tenant_id=tenant_id, model_id=model_id)
    fields: list[dict[str, Any]] = []
    if not row.input.get("image"):  # an image model's form takes pictures, not 1,024 fields
        # The page's own session stands in for the factory load_for_predict opens on a miss.
        loaded = predictions.load_for_predict(
            lambda: nullcontext(session),
            request.app.state.model_cache,
            tenant_id=tenant_id,
            model_id=model_id,
        )
        fields = predict_fields(loaded)
    return ui.page(request, "model.html", model=row, fields=fields)


def predict_fields(model: Any) -> list[dict[str, Any]]:
    """One form field per feature: a number, or a choice among the categories it was trained on."""
    pre = model.preprocessor
    vocabularies = iter(pre.categories)
    fields = []
    for name, kind in zip(pre.feature_names, pre.feature_types, strict=True):
        choices = list(next(vocabularies)) if kind == "categorical" else None
        fields.append({"name": name, "kind": kind, "choices": choices})
    return fields
