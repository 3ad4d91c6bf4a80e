"""The dashboard's view of a tenant's runs: filtered, sorted by creation or by best epoch, and
paged by page number (a person jumps to page 7; an API client follows cursors)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.runs.service import parse_status
from store import runs as run_store
from store.tables import MAX_NAME_CHARS, Run

RunSort = Literal["created", "best"]
MAX_PAGE = 10_000


@dataclass(frozen=True)
class RunBrowse:
    items: list[Run]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def browse_runs(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    page: int = 1,
    per_page: int = 50,
    sort: str = "created",
    status: str | None = None,
    dataset_id: uuid.UUID | None = None,
    name_contains: str | None = None,
) -> RunBrowse:
    if sort not in ("created", "best"):
        raise InvalidInput("sort is 'created' or 'best'", {"field": "sort", "value": sort})
    if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= 200:
        raise InvalidInput("page out of range", {"field": "page", "value": page})
    if name_contains is not None and len(name_contains) > MAX_NAME_CHARS:
        raise InvalidInput("name filter too long", {"field": "name", "limit": MAX_NAME_CHARS})
    rows, total = run_store.browse_runs(
        session,
        tenant_id=tenant_id,
        offset=(page - 1) * per_page,
        limit=per_page,
        sort=sort,
        status=parse_status(status),
        dataset_id=dataset_id,
        name_contains=name_contains or None,
    )
    return RunBrowse(items=rows, total=total, page=page, per_page=per_page)
