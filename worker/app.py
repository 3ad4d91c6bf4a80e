"""The Celery application of the worker process.

``celery -A worker.app worker`` finds ``celery_app`` here, built lazily from the environment on
first access: importing this module connects to nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from core.broker import celery_config, prepare_broker
from core.config import Settings, get_settings
from core.metrics import claim_directory

_APP: Any = None


class _DropCancelDefaultNotice(logging.Filter):
    """Celery warns on every broker connection loss that the 6.0 default of
    ``worker_cancel_long_running_tasks_on_connection_loss`` will be True. We set it explicitly
    (off, see core.broker), so the seven-line notice says nothing here and buries the log line
    that matters. (A ``warnings`` filter would not do: the worker's logging setup puts
    ``always`` in front of it and routes warnings to the ``py.warnings`` logger.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        return "we introduced an optional breaking change" not in record.getMessage()


_NOTICE_FILTER = _DropCancelDefaultNotice()


def create_celery(settings: Settings | None = None) -> Any:
    from celery import Celery

    settings = settings or get_settings()
    # Before any pool child forks or imports prometheus_client (core.metrics).
    claim_directory(settings)
    prepare_broker(settings)
    app = Celery("descent", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    app.conf.descent_settings = settings
    logging.getLogger("py.warnings").addFilter(_NOTICE_FILTER)  # idempotent
    return app


def __getattr__(name: str) -> Any:
    global _APP
    if name in ("celery_app", "app"):
        if _APP is None:
            _APP = create_celery()
        return _APP
    raise AttributeError(name)
