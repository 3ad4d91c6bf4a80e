"""Service configuration: the one place that reads the environment (prefix ``DESCENT_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


def _default_database_url(data: dict[str, Any]) -> str:
    # Absolute path so the URL means the same file whatever the working directory is later.
    return f"sqlite:///{Path(data['data_dir']).resolve() / 'descent.sqlite3'}"


def _default_broker_url(data: dict[str, Any]) -> str:
    # Embedded broker: kombu's filesystem transport in a folder beside the database (one file
    # per message), so `descent serve` needs no broker process. Production sets
    # DESCENT_BROKER_URL=redis://... (see core.broker for why not the SQLAlchemy transport).
    return f"filesystem://{Path(data['data_dir']).resolve() / 'broker'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DESCENT_", extra="ignore", frozen=True)

    # Declared first: the URL defaults below are derived from it.
    data_dir: Path = Path("./descent-data")
    database_url: str = Field(default_factory=_default_database_url)
    broker_url: str = Field(default_factory=_default_broker_url)

    # Uploads and datasets (resource caps: OWASP API4).
    max_upload_bytes: int = Field(default=200 * MiB, gt=0)
    # JSON is parsed into Python objects (~10x its size in memory), so it gets a tighter cap.
    max_json_upload_bytes: int = Field(default=50 * MiB, gt=0)
    # Cap on the decompressed size of an NPZ upload (sum of its members) and of any one array.
    max_decompressed_bytes: int = Field(default=1024 * MiB, gt=0)
    max_dataset_rows: int = Field(default=5_000_000, gt=0)
    max_features: int = Field(default=10_000, gt=0)
    # Distinct values allowed in a categorical feature or a string label.
    max_categories: int = Field(default=1_000, gt=1)
    # Wall-clock budget for parsing one upload; past it the upload is refused (413) naming it.
    parse_budget_seconds: float = Field(default=60.0, gt=0)
    # Image archives: files per archive, and pixels an image may declare (checked from its
    # header before it is decoded: a decompression bomb is refused unread).
    max_image_files: int = Field(default=100_000, gt=0)
    max_image_pixels: int = Field(default=4096 * 4096, gt=0)
    # A temporary upload file untouched this long belongs to no live request (its API process
    # died): the housekeeping pass removes it.
    stale_upload_seconds: float = Field(default=3600.0, gt=0)

    # Training.
    max_parameters: int = Field(default=5_000_000, gt=0)
    checkpoint_every_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # A failed run keeps its latest checkpoint this long (to inspect or resume it); succeeded
    # and cancelled runs keep none.
    failed_checkpoint_retention_seconds: float = Field(default=3 * 86400.0, ge=0)
    blas_threads: int = Field(default=1, ge=1)
    # How often the worker polls the database for a cancel request (between batches).
    cancel_poll_seconds: float = Field(default=0.5, gt=0)
    # Celery limits for one attempt (a longer run resumes from its checkpoint on the next one).
    # The broker's visibility timeout is derived to sit above the hard limit (Redis redelivers
    # an unacknowledged message after it).
    task_soft_time_limit_seconds: int = Field(default=6 * 3600 - 120, gt=0)
    task_time_limit_seconds: int = Field(default=6 * 3600, gt=0)
    # Reconciler: queued runs older than this with no worker are re-sent; 0 disables the loop
    # the API process runs.
    reconcile_every_seconds: float = Field(default=30.0, ge=0)
    requeue_after_seconds: float = Field(default=120.0, gt=0)
    # Rough compute rate used for validate's estimated_seconds (floating point ops per second).
    estimate_flops_per_second: float = Field(default=2e9, gt=0)

    # Prediction.
    predict_cache_size: int = Field(default=8, ge=0)
    max_predict_rows: int = Field(default=10_000, gt=0)
    max_predict_body_bytes: int = Field(default=32 * MiB, gt=0)

    # HTTP.
    # Threads an API process runs blocking work in (database reads and writes, parsing). Each
    # may hold a database connection, so the pool has these plus a few for background tasks
    # (reconciler, progress polling, metrics): connections are reused, never opened per request.
    api_threads: int = Field(default=16, ge=1)
    db_pool_size: int = Field(default=20, ge=1)
    # PostgreSQL: the connections of the reads an API process runs on its event loop
    # (store.async_reads), opened as the load needs them and kept. A read waits for one on the
    # loop, which costs nothing but the wait, so a few serve many concurrent requests.
    db_read_pool_size: int = Field(default=8, ge=1)
    # Cap on a JSON request body (runs, validate, and every other JSON route but predict).
    max_json_body_bytes: int = Field(default=1 * MiB, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # An API key, once checked against the database, is trusted for this long by that API
    # process: a revoked key keeps working there for at most this many seconds.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # A finished run, a model or a dataset read by id is answered from memory by that API
    # process for this long (0: never); a write by the tenant forgets it (api.read_cache).
    read_cache_seconds: float = Field(default=5.0, ge=0)
    # A dashboard sign-in lasts this long (or until sign-out, or its key is revoked).
    web_session_hours: float = Field(default=12.0, gt=0)

    # Progress streaming: how often an API process looks for news of the runs its clients watch
    # (one query for all of them); with a Redis broker pub/sub brings news at once, and this
    # slower poll is the safety net.
    events_poll_seconds: float = Field(default=0.25, gt=0)
    events_fallback_poll_seconds: float = Field(default=2.0, gt=0)

    # Per-tenant limits (answered 429 with Retry-After).
    max_concurrent_runs_per_tenant: int = Field(default=4, ge=1)
    rate_limit_per_minute: int = Field(default=1200, ge=1)
    # Reported by /version when the deployment sets it.
    git_sha: str | None = None

    # Metrics (core.metrics). Prometheus multiprocess files of every API and worker process on
    # this machine that shares the directory (local disk): GET /metrics sums them.
    metrics_dir: Path = Field(
        default_factory=lambda data: Path(data["data_dir"]).resolve() / "metrics"
    )
    # When set, GET /metrics requires "Authorization: Bearer <token>"; unset, it is open.
    metrics_token: SecretStr | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _pool_serves_every_thread(self) -> Settings:
        if self.db_pool_size < self.api_threads:
            raise ValueError(
                f"DESCENT_DB_POOL_SIZE ({self.db_pool_size}) must be at least "
                f"DESCENT_API_THREADS ({self.api_threads}): each thread may hold a connection"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
