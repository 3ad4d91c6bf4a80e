"""The broker seen from both sides: the Celery configuration the worker runs with, and the
sender the API uses to enqueue a run id by task name (so the web process never imports the
worker's code). The broker only carries run ids; the database is the source of truth.

Embedded mode uses kombu's filesystem transport (with an atomic put: core.fs_transport):
``filesystem:///abs/dir`` (our spelling; kombu itself takes the folders as transport options)
keeps one file per message in that directory and needs no server process.
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
EMBEDDED_TRANSPORT = "core.fs_transport:Transport"


class Enqueuer(Protocol):
    def __call__(self, run_id: str) -> None: ...


def is_filesystem(url: str) -> bool:
    return url.startswith("filesystem://")


def filesystem_folder(url: str) -> Path:
    path = urlsplit(url).path
    if not path or path == "/":
        raise ValueError("a filesystem broker URL needs a folder: filesystem:///abs/dir")
    return Path(path)


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://"))


def transport_options(settings: Settings) -> dict[str, Any]:
    if is_redis(settings.broker_url):
        # Redis hands an unacknowledged message out again after the visibility timeout (the
        # score is never refreshed while the task runs). Keep it above the hard time limit so
        # a healthy attempt is not started twice; the DB lease would skip the copy anyway.
        return {"visibility_timeout": settings.task_time_limit_seconds + 600}
    if is_filesystem(settings.broker_url):
        folder = filesystem_folder(settings.broker_url)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu polls the folder once a second by default: a run would wait ~0.6 s to
            # start. Listing an almost empty folder 20 times a second costs next to nothing.
            "polling_interval": 0.05,
        }
    # Anything else (kombu's SQLAlchemy transport hands its options to create_engine()).
    return {}


def kombu_url(settings: Settings) -> str:
    return "filesystem://" if is_filesystem(settings.broker_url) else settings.broker_url


def prepare_broker(settings: Settings) -> None:
    """Create the folders of an embedded filesystem broker (no-op for a server broker)."""
    if is_filesystem(settings.broker_url):
        options = transport_options(settings)
        for key in ("data_folder_in", "control_folder"):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Configuration shared by the worker and the sender."""
    return {
        "broker_url": kombu_url(settings),
        # kombu's filesystem transport with an atomic put (core.fs_transport); None: the URL's.
        "broker_transport": EMBEDDED_TRANSPORT if is_filesystem(settings.broker_url) else None,
        # The one place the visibility timeout belongs: Celery reads no top-level
        # ``visibility_timeout``, and there is no result backend to take transport options.
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        # json only: nothing on the broker can make a worker unpickle.
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        # No result backend (none is configured): the database holds results.
        "task_ignore_result": True,
        # At-least-once delivery; the atomic claim makes a second delivery a no-op.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A lost broker connection must cost a run nothing. With this on, Celery terminates
        # every unacknowledged late-ack task on reconnect ("cannot be acknowledged after a
        # connection loss ... Terminating it instead"): each Redis restart cost an attempt and
        # a lease-period stall, and three failed the run ``worker_lost``. Off, the pool child
        # keeps training: completion, lease and heartbeat live in the database, not in the ack.
        # What the broker does with the unacknowledged message is then harmless: lost with a
        # Redis that restarted empty, or put back in the queue by kombu on reconnect (it moves
        # the message from Redis's ``unacked`` hash back to the queue) and delivered again,
        # where the atomic claim (queued -> running only) skips it without charging an
        # attempt. Celery 6.0 plans to make True the default: keep it explicit.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
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
