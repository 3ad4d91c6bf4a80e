"""Opaque keyset cursors for newest-first lists: ``(created_at, id)`` of the last item shown."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from core.errors import BadRequest, InvalidInput
from store.base import Keyset

MAX_PAGE_SIZE = 500
# Rows are created now-ish; a cursor outside these years was not issued by us. The bound also
# keeps every datetime operation on the decoded value (UTC conversion, binding, comparison)
# far from the year-1 / year-9999 edges where Python raises OverflowError.
MIN_CURSOR_YEAR = 1970
MAX_CURSOR_YEAR = 9000

T = TypeVar("T")


class Listed(Protocol):
    created_at: datetime
    id: uuid.UUID


L = TypeVar("L", bound=Listed)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor() -> BadRequest:
    return BadRequest(
        "invalid cursor; pass the next_cursor of a previous page",
        {"field": "cursor"},
        code="invalid_cursor",
    )


def decode_cursor(cursor: str) -> Keyset:
    """The keyset a cursor from :func:`encode_cursor` holds; BadRequest (400 ``invalid_cursor``)
    for anything else. A cursor is client input: every failure is caught here, none reaches the
    database."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # validate=True: the default decoder silently drops characters outside the alphabet.
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        stamp, _, item = raw.decode("utf-8").partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not MIN_CURSOR_YEAR <= created_at.year <= MAX_CURSOR_YEAR:
            raise ValueError("not a timestamp we issue")
        keyset = created_at.astimezone(UTC), uuid.UUID(item)
    except (ValueError, OverflowError, UnicodeError, binascii.Error) as exc:
        raise _invalid_cursor() from exc
    # We issue UTC timestamps and canonical ids only: anything that does not encode back to the
    # same text (another offset, another spelling) was made by hand.
    if encode_cursor(*keyset) != cursor.rstrip("="):
        raise _invalid_cursor()
    return keyset


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE_SIZE}",
            {"field": "limit", "value": limit},
        )
    return limit


def page_of(rows: list[L], limit: int) -> Page[L]:
    """A page from up to ``limit + 1`` rows fetched newest first: the extra one only says
    that there is a next page."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page(items=rows, next_cursor=next_cursor)


def newest_page(
    fetch: Callable[[Keyset | None, int], list[L]], *, limit: int, cursor: str | None
) -> Page[L]:
    """One page of a newest-first list: ``fetch(after, n)`` returns up to ``n`` rows after the
    keyset ``after``; it is asked for one row more than the page, which only says that there
    is a next page."""
    check_limit(limit)
    after = decode_cursor(cursor) if cursor else None
    return page_of(fetch(after, limit + 1), limit)
