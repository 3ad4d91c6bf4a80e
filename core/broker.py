"""The broker seen from both sides: the Celery configuration the worker runs with, and the
sender the API uses to enqueue a run id by task name (so the web process never imports the
worker's code). The broker only carries run ids; the database is the source of truth.

Embedded mode uses kombu's filesystem transport: ``filesystem:///abs/dir`` (our spelling; kombu
itself takes the folders as transport options) keeps one file per message in that directory and
needs no server process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from core.config import Settings

log = logging.getLogger(__name__)

TRAIN_TASK = "runs.train"
TRAIN_QUEUE = "descent.runs"


class Enqueuer(Protocol):
    def __call__(self, run_id: str) -> None: ...


def is_filesystem(url: str) -> bool:
    return url.startswith("filesystem://")


def filesystem_folder(url: str) -> Path:
    path = urlsplit(url).path
    if not path or path == "/":
        raise ValueError("a filesystem broker URL needs a folder: filesystem:///abs/dir")
    return Path(path)


def transport_options(settings: Settings) -> dict[str, Any]:
    # Redis redelivers an unacknowledged message after the visibility timeout. Keep it above the
    # hard time limit so a long attempt is never started twice in parallel (the DB lease fences
    # it anyway).
    visibility = settings.task_time_limit_seconds + 600
    options: dict[str, Any] = {"visibility_timeout": visibility}
    if settings.broker_url.startswith("sqla+"):
        # kombu's SQLAlchemy transport hands its options to create_engine().
        return {}
    if is_filesystem(settings.broker_url):
        folder = filesystem_folder(settings.broker_url)
        options.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            control_folder=str(folder / "control"),
            store_processed=False,
            # kombu polls the folder once a second by default: a run would wait ~0.6 s to start.
            # Listing an almost empty folder 20 times a second costs next to nothing.
            polling_interval=0.05,
        )
    return options


def kombu_url(settings: Settings) -> str:
    return "filesystem://" if is_filesystem(settings.broker_url) else settings.broker_url


def prepare_broker(settings: Settings) -> None:
    """Create the folders of an embedded filesystem broker (no-op for a server broker)."""
    if is_filesystem(settings.broker_url):
        options = transport_options(settings)
        for key in ("data_folder_in", "control_folder"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Configuration shared by the worker and the sender (see reliability notes C1-C12)."""
    options = transport_options(settings)
    return {
        "broker_url": kombu_url(settings),
        "broker_transport_options": options,
        "result_backend_transport_options": options,
        "visibility_timeout": settings.task_time_limit_seconds + 600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        # json only: nothing on the broker can make a worker unpickle.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        # The database holds results; no result backend.
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once delivery; the lease token makes a second delivery a no-op.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": settings.task_soft_time_limit_seconds,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_default_queue": TRAIN_QUEUE,
        "task_routes": {TRAIN_TASK: {"queue": TRAIN_QUEUE}},
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


def make_celery_client(settings: Settings) -> Any:
    """A Celery app with no tasks: enough to send by name and to ping the broker."""
    from celery import Celery

    prepare_broker(settings)
    app = Celery("descent")
    app.conf.update(celery_config(settings))
    return app


class CelerySender:
    """``send(run_id)``: publish ``runs.train`` with only the run id."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = make_celery_client(self._settings)
        return self._app

    def __call__(self, run_id: str) -> None:
        self.app.send_task(TRAIN_TASK, args=[run_id], queue=TRAIN_QUEUE, retry=False)

    def check(self) -> None:
        """Raise when the broker does not answer (for /readyz)."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
