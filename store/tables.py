"""Tables. Every row carries ``tenant_id`` so every query can be scoped to the caller."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.vocabulary import Task
from store.base import Base, utcnow

# Longest name of a dataset, run, column or label (the String length of those columns).
MAX_NAME_CHARS = 200


class DatasetFormat(StrEnum):
    csv = "csv"
    npz = "npz"
    json = "json"
    parquet = "parquet"
    images = "images"  # a zip of class folders of PNG/JPEG files


class RunStatus(StrEnum):
    # A sweep trial waiting for a slot (its sweep's max_parallel, the tenant's concurrent-run
    # limit): not sent to the workers, not claimable, not counted as live (core.sweeps.slots).
    pending = "pending"
    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


# A run in one of these states still reads its dataset.
ACTIVE_RUN_STATUSES = (RunStatus.queued, RunStatus.running, RunStatus.cancelling)
FINISHED_RUN_STATUSES = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


class SweepStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class SweepMode(StrEnum):
    min = "min"
    max = "max"


def _str_enum(enum: type[StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK (not a native PG enum): same shape on both backends, and adding a value
    # later is a constraint swap rather than an ALTER TYPE.
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A disabled tenant's keys stop working (401) without deleting its data.
    disabled_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    # Public part of the token, used to find the row; the secret part is only ever hashed.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        CheckConstraint("n_rows > 0", name="n_rows_positive"),
        CheckConstraint("n_features > 0", name="n_features_positive"),
        CheckConstraint("n_inputs > 0", name="n_inputs_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    format: Mapped[DatasetFormat] = mapped_column(_str_enum(DatasetFormat, "dataset_format"))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_features: Mapped[int]
    feature_names: Mapped[list[str]] = mapped_column(JSON)
    feature_types: Mapped[list[str]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    task: Mapped[Task] = mapped_column(_str_enum(Task, "task"))
    classes: Mapped[list[Any] | None] = mapped_column(JSON)
    # Network input width (numeric features + one-hot columns) and rows per class (in `classes`
    # order): what submit and validate need, so neither reads the blob.
    n_inputs: Mapped[int]
    class_counts: Mapped[list[int] | None] = mapped_column(JSON)
    # Missing values per feature, only the features that have any ({} when none).
    missing: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # Why the task was inferred as it was, when the call was close (else None).
    task_note: Mapped[str | None] = mapped_column(Text)
    # Image datasets: {"image_size", "color_mode"}, which predict needs to decode a picture.
    image_shape: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # GET /v1/datasets/{id}/profile, computed once (core.datasets.profile).
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    # sha256 and size of the file as uploaded (what a client can check with sha256sum).
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The parsed dataset as a compressed, pickle-free NPZ (core.datasets.encode_npz), with its
    # own hash, verified whenever it is loaded. Deferred: listings never pull the arrays.
    blob: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    blob_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A hyperparameter search: its trials are runs (``runs.sweep_id``), expanded and validated
    at submit (core.sweeps)."""

    __tablename__ = "sweeps"
    __table_args__ = (
        Index("ix_sweeps_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        CheckConstraint("max_parallel >= 1", name="max_parallel_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS))
    # SET NULL, as runs: deleting the dataset (once no trial uses it) keeps the leaderboard.
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL")
    )
    # The base TrainingSpec as sent (each trial's resolved spec is on its run).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"method", "space", "n_trials"?}: what was asked; the seed used is its own column.
    search: Mapped[dict[str, Any]] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(64))
    mode: Mapped[SweepMode] = mapped_column(_str_enum(SweepMode, "sweep_mode"))
    max_parallel: Mapped[int]
    # {"type": "asha", "grace_epochs", "reduction_factor"} or None.
    early_termination: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[SweepStatus] = mapped_column(
        _str_enum(SweepStatus, "sweep_status"), default=SweepStatus.running
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        Index("ix_runs_sweep_id_status", "sweep_id", "status"),
        Index("ix_runs_dataset_id_status", "dataset_id", "status"),
        Index("ix_runs_status_heartbeat_at", "status", "heartbeat_at"),
        Index("ix_runs_tenant_id_best_loss", "tenant_id", "best_loss"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    # SET NULL: deleting a dataset (allowed once no active run uses it) keeps finished runs and
    # their models.
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL")
    )
    name: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS))
    status: Mapped[RunStatus] = mapped_column(
        _str_enum(RunStatus, "run_status"), default=RunStatus.queued
    )
    # The fully resolved TrainingSpec (every default filled in).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    epoch: Mapped[int] = mapped_column(default=0)
    epochs: Mapped[int | None]
    fraction: Mapped[float] = mapped_column(default=0.0)
    eta_seconds: Mapped[float | None]
    latest_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The epoch with the lowest validation loss (training loss without a validation split), so
    # lists can show and sort by the best epoch, not the last one.
    best_epoch: Mapped[int | None]
    best_loss: Mapped[float | None]
    best_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    # Fencing token of the attempt that holds the run; every worker write matches on it.
    lease_token: Mapped[uuid.UUID | None]
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS))
    # sha256 of the request that first used ``idempotency_key``: a reuse with another body is
    # a conflict, not a replay.
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # use_alter: runs and models reference each other; this FK is added after both tables exist.
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("models.id", use_alter=True, ondelete="SET NULL")
    )
    # Warm start: the model whose weights this run starts from (the caller's own, checked at
    # submit). Models are never deleted; SET NULL only keeps a wholesale delete of models
    # (a tenant's, a test's cleanup) from tripping over it.
    init_model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("models.id", use_alter=True, ondelete="SET NULL")
    )
    # A sweep trial: its sweep, its number there (the expansion's order) and its parameters
    # (dotted spec field -> value); all null for a plain run.
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"))
    trial: Mapped[int | None]
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # ASHA: the last rung (an epoch) this trial was judged at, and whether it was stopped
    # there. Written in the epoch's own fenced transaction, so each decision is made once.
    rung: Mapped[int | None]
    stopped_early: Mapped[bool] = mapped_column(default=False, server_default=false())


class RunEpoch(Base):
    __tablename__ = "run_epochs"
    __table_args__ = (
        UniqueConstraint("run_id", "epoch"),
        CheckConstraint("epoch >= 0", name="epoch_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    train_loss: Mapped[float]
    val_loss: Mapped[float | None]
    train_accuracy: Mapped[float | None]
    val_accuracy: Mapped[float | None]
    learning_rate: Mapped[float]
    seconds: Mapped[float]
    # Anything else the trainer reports (extra metrics), kept verbatim.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("run_id", "epoch"),
        CheckConstraint("epoch >= 0", name="epoch_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    blob: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (Index("ix_models_tenant_id_created_at_id", "tenant_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    # One immutable model per succeeded run.
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id"), unique=True)
    task: Mapped[Task] = mapped_column(_str_enum(Task, "task"))
    # {feature_names, feature_types, n_features, ...}: what predict expects.
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    classes: Mapped[list[Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    blob: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A dashboard sign-in: the browser holds the token (an HttpOnly cookie), only its sha256
    is stored. It lasts until sign-out, expiry, or its key's revocation."""

    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    api_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Sent back by the page in X-CSRF-Token on every state-changing call.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RegisteredModel(Base):
    """A name in the tenant's model registry; its versions point at models."""

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _registered_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("registered_model_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    registered_model_id: Mapped[uuid.UUID] = _registered_fk()
    version: Mapped[int]  # 1, 2, 3 ... per name
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelAlias(Base):
    """``production`` -> version 3: what callers predict with; moving it back is a rollback."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("registered_model_id", "alias"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    registered_model_id: Mapped[uuid.UUID] = _registered_fk()
    alias: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasMove(Base):
    """Every set, move and removal of an alias: who (the API key), when, from and to."""

    __tablename__ = "alias_moves"
    __table_args__ = (
        Index("ix_alias_moves_registered_model_id_alias", "registered_model_id", "alias"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    registered_model_id: Mapped[uuid.UUID] = _registered_fk()
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]  # None: removed
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)
