"""The FastAPI application factory. Building the app connects to nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import datasets, health
from api.routes.health import package_version
from core.config import Settings, get_settings
from store.session import Database


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    broker_check: Callable[[], None] | None = None,
) -> FastAPI:
    """``broker_check`` raises when the broker is unreachable; /readyz reports it."""
    settings = settings or get_settings()
    db = database or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
        title="Descent",
        summary="Training-as-a-service: small dense networks trained by SGD, behind HTTP",
        version=package_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.broker_check = broker_check
    install_error_handlers(app, retry_after=settings.retry_after_seconds)
    app.include_router(health.router)
    app.include_router(datasets.router)
    return app
