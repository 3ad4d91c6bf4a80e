"""GET /metrics: Prometheus text format (filled in by the metrics work)."""

from __future__ import annotations

from fastapi import FastAPI


def install_metrics(app: FastAPI) -> None:
    """Everything /metrics needs on an app: the route and the request instrumentation."""
