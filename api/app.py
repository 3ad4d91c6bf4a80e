"""The FastAPI application factory. Building the app connects to nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import examples as api_examples
from api.docs import install_docs
from api.errors import install_error_handlers
from api.middleware import EdgeMiddleware
from api.read_cache import ReadCache
from api.routes import (
    dashboard,
    datasets,
    events,
    export,
    health,
    models,
    registry,
    runs,
    sweeps,
)
from api.routes.health import package_version
from api.routes.metrics import install_metrics
from api.schemas import PredictIn
from core import housekeeping
from core import runs as run_service
from core.auth import PrincipalCache
from core.broker import CelerySender, Enqueuer
from core.config import Settings, get_settings
from core.predict_batch import PredictBatcher
from core.predictions import ModelCache
from core.registry import ResolveCache
from core.runs.events import RunWatch
from models.spec import TrainingSpec
from store.session import Database

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    broker_check: Callable[[], None] | None = None,
    enqueue: Enqueuer | None = None,
    reconcile: bool = False,
) -> FastAPI:
    """``broker_check`` raises when the broker is unreachable; /readyz reports it.
    ``enqueue`` sends a run id to the workers (default: Celery ``send_task`` by name on the
    configured broker, connected on first use). ``reconcile`` does the housekeeping at start
    and runs the reconciler loop (with its housekeeping) in this process. ``serve_app`` wires
    all three for a real deployment."""
    settings = settings or get_settings()
    db = database or Database.from_settings(settings)
    sender: CelerySender | None = None
    if enqueue is None:
        sender = CelerySender(settings)
        enqueue = sender
    run_reconciler = reconcile and settings.reconcile_every_seconds > 0
    run_watch = RunWatch(db, settings)
    send: Enqueuer = enqueue

    async def reconciler() -> None:
        while True:
            await asyncio.sleep(settings.reconcile_every_seconds)
            try:
                await anyio.to_thread.run_sync(
                    lambda: run_service.reconcile(db, settings=settings, enqueue=send)
                )
            except Exception as exc:  # the loop must outlive a database or broker outage
                log.warning("reconciler pass failed: %s", exc)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # As many threads as the database pool serves (Settings.api_threads).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if reconcile:
            # What a process that died (this one's predecessor, say) left behind goes at start.
            await anyio.to_thread.run_sync(lambda: housekeeping.housekeep(db, settings))
        await db.open_async_reads(settings.db_read_pool_size)
        task = asyncio.create_task(reconciler()) if run_reconciler else None
        # The ~130,000 objects of the loaded libraries and app never die; frozen, the
        # collector stops scanning them: a full collection took 120 ms here, a stall every
        # request waiting at the time paid (the p99 of predict).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await run_watch.stop()
            await db.close_async_reads()
            if sender is not None:
                sender.close()
            if database is None:  # a database the caller gave is the caller's to dispose
                db.dispose()

    app = FastAPI(
        title="Descent",
        summary="Training-as-a-service: small dense networks trained by SGD, behind HTTP",
        version=package_version(),
        lifespan=lifespan,
        # The default pages load Swagger UI and ReDoc from a CDN; install_docs serves them.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.broker_check = broker_check
    app.state.enqueue = send
    app.state.model_cache = ModelCache(settings.predict_cache_size)
    app.state.predict_batcher = PredictBatcher()
    app.state.principal_cache = PrincipalCache(settings.auth_cache_seconds)
    app.state.read_cache = ReadCache(settings.read_cache_seconds)
    app.state.resolve_cache = ResolveCache()
    app.state.run_watch = run_watch
    install_error_handlers(app, retry_after=settings.retry_after_seconds)
    # Authentication and the body caps, before routing and before any body is read.
    app.add_middleware(EdgeMiddleware, api=app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(models.router)
    app.include_router(export.router)
    app.include_router(registry.router)
    app.include_router(sweeps.router)
    app.include_router(dashboard.router)
    install_docs(app)
    install_metrics(app)
    _document_hand_parsed_schemas(app)
    return app


def serve_app() -> FastAPI:
    """The app a server runs (``uvicorn --factory api.app:serve_app``): settings from the
    environment, Celery sender, broker readiness check, reconciler loop."""
    settings = get_settings()
    sender = CelerySender(settings)
    return create_app(settings, broker_check=sender.check, enqueue=sender, reconcile=True)


def _document_hand_parsed_schemas(app: FastAPI) -> None:
    """Bodies parsed by hand are still published: predict's (orjson -> numpy) under
    components/schemas/PredictIn, and the TrainingSpec the service validates under
    components/schemas/TrainingSpec (api.schemas.SpecJson refers to it)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in (("PredictIn", PredictIn), ("TrainingSpec", TrainingSpec)):
                published = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(published.pop("$defs", {}))
                components[name] = published
            _lift_examples(schema)
            _restore_example_nulls(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _lift_examples(schema: dict[str, Any]) -> None:
    """Each request and response body whose schema is a model with examples (api.examples)
    shows them on the operation too (media-type ``example``/``examples``), where Swagger UI and
    ReDoc present them, unless the route gave its own."""
    components = schema.get("components", {}).get("schemas", {})
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            bodies = [operation.get("requestBody") or {}, *operation.get("responses", {}).values()]
            for body in bodies:
                for media in body.get("content", {}).values():
                    ref = (media.get("schema") or {}).get("$ref", "")
                    found = components.get(ref.rsplit("/", 1)[-1], {}).get("examples")
                    if not found or "example" in media or "examples" in media:
                        continue
                    if len(found) == 1:
                        media["example"] = found[0]
                    else:
                        media["examples"] = {
                            f"example {i}": {"value": value} for i, value in enumerate(found, 1)
                        }


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _restore_example_nulls(schema: dict[str, Any]) -> None:
    """FastAPI drops every null from the document it encodes, the examples' nulls too (a run's
    ``"error": null``); each example that is one of api.examples' is put back whole."""
    known: dict[str, Any] = {}
    for name, value in vars(api_examples).items():
        if not name.isupper():
            continue
        for example in (value, *value) if isinstance(value, list) else (value,):
            if isinstance(example, dict):
                known[json.dumps(_without_nulls(example), sort_keys=True)] = example

    def whole(value: Any) -> Any:
        return known.get(json.dumps(value, sort_keys=True), value)

    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "example" in node:
            node["example"] = whole(node["example"])
        found = node.get("examples")
        if isinstance(found, list):
            node["examples"] = [whole(e) for e in found]
        elif isinstance(found, dict):
            for named in found.values():
                if isinstance(named, dict) and "value" in named:
                    named["value"] = whole(named["value"])
        stack.extend(v for k, v in node.items() if k not in ("example", "examples"))
