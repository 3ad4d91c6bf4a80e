"""The Celery application of the worker process.

``celery -A worker.app worker`` finds ``celery_app`` here, built lazily from the environment on
first access: importing this module connects to nothing.
"""

from __future__ import annotations

from typing import Any

from core.broker import celery_config, prepare_broker
from core.config import Settings, get_settings

_APP: Any = None


def create_celery(settings: Settings | None = None) -> Any:
    from celery import Celery

    settings = settings or get_settings()
    prepare_broker(settings)
    app = Celery("descent", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    app.conf.descent_settings = settings
    return app


def __getattr__(name: str) -> Any:
    global _APP
    if name in ("celery_app", "app"):
        if _APP is None:
            _APP = create_celery()
        return _APP
    raise AttributeError(name)
