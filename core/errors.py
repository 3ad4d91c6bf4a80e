"""Typed errors. Each carries its HTTP status and a stable ``code``; ``api`` renders them once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

# Longest excerpt of a client's value that an error message or its details repeat back.
MAX_QUOTED_CHARS = 200


# Validation errors an answer lists, at most (the first ones; the answer says how many).
MAX_LISTED_ERRORS = 20


def field_path(parts: Iterable[Any]) -> str:
    """A dotted path of a client's field names, each cut to ``MAX_QUOTED_CHARS`` characters:
    a 10 MB key named in an error is not echoed back whole."""
    return ".".join(cut(str(part)) for part in parts)


def cut(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def quote(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error never echoes a huge input."""
    return cut(repr(value), limit)


class DescentError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        # A subclass's class-level code is the default; call sites may refine it (stable strings).
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class BadRequest(DescentError):
    status_code = 400
    code = "bad_request"


class Unauthorized(DescentError):
    status_code = 401
    code = "unauthorized"


class NotFound(DescentError):
    status_code = 404
    code = "not_found"


class Conflict(DescentError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(DescentError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedFormat(DescentError):
    status_code = 415
    code = "unsupported_format"


class InvalidInput(DescentError):
    """Bad content. ``details`` names what is wrong: field, column, line, value, expected."""

    status_code = 422
    code = "invalid_input"


class RateLimited(DescentError):
    status_code = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        retry_after: int = 1,
    ) -> None:
        super().__init__(message, details, code=code, retry_after=retry_after)


class DependencyDown(DescentError):
    status_code = 503
    code = "dependency_unavailable"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        retry_after: int = 5,
    ) -> None:
        super().__init__(message, details, code=code, retry_after=retry_after)


class Forbidden(DescentError):
    status_code = 403
    code = "forbidden"


class NotSupported(DescentError):
    """Something this server cannot do as installed (e.g. an optional extra is missing)."""

    status_code = 501
    code = "not_implemented"
