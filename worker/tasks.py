"""Thin tasks: a run id in, one core call. Retries are declared here; what happens to the run
is decided by core.runs (the database is the source of truth)."""

from __future__ import annotations

from functools import lru_cache

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from core.broker import TRAIN_TASK
from core.config import Settings, get_settings
from core.runs.training import RetryableRunError, run_training
from store.session import Database


@lru_cache(maxsize=1)
def _database(settings: Settings) -> Database:
    # One engine per worker process, built on first use (after the prefork fork).
    return Database.from_settings(settings)


@shared_task(  # type: ignore[untyped-decorator]
    name=TRAIN_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(RetryableRunError, OperationalError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
)
def train_run(run_id: str) -> str:
    settings = getattr(train_run.app.conf, "descent_settings", None) or get_settings()
    return run_training(
        _database(settings),
        run_id,
        settings=settings,
        time_limit_errors=(SoftTimeLimitExceeded,),
    )
