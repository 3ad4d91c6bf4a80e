"""The dashboard's templates and the helpers they use. Pages are rendered on the server; the
little JavaScript they carry (static/*.js) calls the same /v1 API as any client, with the
session cookie and the CSRF token instead of a key."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from store.tables import FINISHED_RUN_STATUSES, Run, RunStatus

UI = "/ui"
LOGIN = f"{UI}/login"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
)


def is_page(path: str) -> bool:
    return path == "/" or path == UI or path.startswith(f"{UI}/")


def duration(run: Run) -> str:
    if run.started_at is None:
        return "–"
    end = run.finished_at or datetime.now(run.started_at.tzinfo)
    elapsed = max(0.0, (end - run.started_at).total_seconds())
    if elapsed < 60:
        return f"{elapsed:.1f} s"
    minutes, secs = divmod(int(elapsed), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def metric(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{float(value):.{digits}g}"


def val_metric(metrics: dict[str, Any] | None) -> str:
    """The number a person compares runs by: validation accuracy or R², else a loss."""
    metrics = metrics or {}
    for key, label in (("val_accuracy", "acc"), ("val_r2", "R²"), ("val_loss", "loss")):
        if metrics.get(key) is not None:
            return f"{label} {metric(metrics[key])}"
    return f"train loss {metric(metrics.get('train_loss'))}" if metrics else "–"


def param_value(value: Any) -> str:
    """A sweep parameter's value as a person reads it: a number as is, text as is, a list or
    an object as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def is_active(run: Run) -> bool:
    """Not finished: the page follows it live (a sweep's pending trial too, which does not
    count against the tenant's concurrent runs, so it is not in ACTIVE_RUN_STATUSES)."""
    return RunStatus(run.status) not in FINISHED_RUN_STATUSES


TEMPLATES.env.filters["duration"] = duration
TEMPLATES.env.filters["metric"] = metric
TEMPLATES.env.filters["val_metric"] = val_metric
TEMPLATES.env.filters["param_value"] = param_value
TEMPLATES.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
TEMPLATES.env.globals["is_active"] = is_active


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    signed = getattr(request.state, "signed_in", None)
    context.setdefault("csrf_token", signed.csrf_token if signed else "")
    context.setdefault("signed_in", signed is not None)
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    # Scripts only from our own files (no inline script: an injected one would not run), and
    # no other site may frame the pages (clickjacking). Inline styles carry the bar widths.
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, code: str, message: str) -> Response:
    """The page a person sees for an error an API client gets as JSON."""
    if status == 401:
        return RedirectResponse(LOGIN, status_code=303)
    title = {404: "Not found", 403: "Not allowed"}.get(status, "Something is wrong")
    return page(request, "error.html", status, title=title, code=code, message=message)
