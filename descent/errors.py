"""The client's exceptions: one type per kind of answer, each carrying the server's ``code``,
``message`` and ``details`` (which name the field, column or line that is wrong)."""

from __future__ import annotations

from typing import Any

import httpx


class DescentError(Exception):
    """An error answer from a Descent server (or no answer at all)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        details: dict[str, Any] | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {self.details[k]}" for k in ("field", "column", "line") if k in self.details
        )
        return f"{self.code}: {self.message}" + (f" ({where})" if where else "")


class BadRequest(DescentError):
    """400: the request could not be read (malformed body, invalid cursor)."""


class Unauthorized(DescentError):
    """401: missing, unknown or revoked API key."""


class NotFound(DescentError):
    """404: no such object, or not this key's tenant's."""


class Conflict(DescentError):
    """409: the object's state does not allow it (a finished run, a dataset in use)."""


class PayloadTooLarge(DescentError):
    """413: past a size limit; ``details`` names it."""


class UnsupportedFormat(DescentError):
    """415: a file format the server does not read."""


class InvalidInput(DescentError):
    """422: the content is wrong; ``details`` names the field, column, line or value (and for
    a sweep, the ``trial`` whose spec is wrong and its ``params``)."""

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return str(value) if value is not None else None

    @property
    def column(self) -> str | int | None:
        """The column that is wrong: its name as the file spells it, or for arrays (JSON X,
        NPZ) its index."""
        value = self.details.get("column")
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None

    @property
    def line(self) -> int | None:
        """The physical line of the uploaded file that is wrong (1-based: 1 is a CSV's
        header)."""
        value = self.details.get("line")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def trial(self) -> int | None:
        value = self.details.get("trial")
        return int(value) if value is not None else None

    @property
    def params(self) -> dict[str, Any] | None:
        value = self.details.get("params")
        return dict(value) if isinstance(value, dict) else None


class RateLimited(DescentError):
    """429: too many requests or live runs; retried by the client, raised once retries end."""


class Unavailable(DescentError):
    """503 (a dependency of the server is down) or no connection to the server at all;
    retried by the client, raised once retries end."""


class RunFailed(DescentError):
    """A run ended ``failed`` (or ``cancelled``): ``code`` and ``message`` are the run's error."""

    def __init__(self, run_id: str, status: str, code: str, message: str) -> None:
        super().__init__(message, code=code, details={"run_id": run_id, "status": status})
        self.run_id = run_id
        self.run_status = status


class SweepFailed(DescentError):
    """A sweep ended ``failed`` or ``cancelled`` (``code`` is that status), or without a model
    (``no_model``). ``best_model_id`` is the best trial's model when there was one."""

    def __init__(
        self, sweep_id: str, status: str, code: str, message: str, best_model_id: str | None
    ) -> None:
        details = {"sweep_id": sweep_id, "status": status, "best_model_id": best_model_id}
        super().__init__(message, code=code, details=details)
        self.sweep_id = sweep_id
        self.sweep_status = status
        self.best_model_id = best_model_id


_BY_STATUS: dict[int, type[DescentError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    405: BadRequest,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedFormat,
    422: InvalidInput,
    429: RateLimited,
    503: Unavailable,
}


def error_from_response(response: httpx.Response) -> DescentError:
    try:
        body = response.json()
    except ValueError:
        body = None
    retry_after = response.headers.get("retry-after")
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    return error_for(response.status_code, body, seconds)


def error_for(status: int, body: Any, retry_after: float | None = None) -> DescentError:
    """The exception for an error answer, from its ``{"error": {...}}`` envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": f"http_{status}", "message": f"HTTP {status}", "details": {}}
    kind = _BY_STATUS.get(status, Unavailable if status >= 500 else DescentError)
    return kind(
        str(error.get("message", "")),
        code=str(error.get("code", f"http_{status}")),
        details=error.get("details") or {},
        status=status,
        retry_after=retry_after,
    )


__all__ = [
    "BadRequest",
    "Conflict",
    "DescentError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RunFailed",
    "SweepFailed",
    "Unauthorized",
    "Unavailable",
    "UnsupportedFormat",
    "error_for",
    "error_from_response",
]
