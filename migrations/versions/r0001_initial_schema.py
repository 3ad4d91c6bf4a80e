"""Initial schema: tenants, api keys, datasets, runs, run epochs, checkpoints, models.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Hand-reviewed from autogenerate. Frozen: it spells out every type and enum value rather than
importing them from ``store``, so later model changes cannot silently rewrite history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = ("classification", "regression")
RUN_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), nullable=False)


def _tenant(table: str) -> list[SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{table}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "tenants",
        _id(),
        sa.Column("name", sa.String(length=100), nullable=False),
        _ts("created_at"),
        _ts("disabled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "api_keys",
        _id(),
        *_tenant("api_keys"),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "datasets",
        _id(),
        *_tenant("datasets"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("format", _enum("dataset_format", "csv", "npz", "json"), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("feature_names", sa.JSON(), nullable=False),
        sa.Column("feature_types", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("task", _enum("task", *TASKS), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("n_rows > 0", name=op.f("ck_datasets_n_rows_positive")),
        sa.CheckConstraint("n_features > 0", name=op.f("ck_datasets_n_features_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    op.create_index(
        "ix_datasets_tenant_id_created_at_id", "datasets", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "runs",
        _id(),
        *_tenant("runs"),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", _enum("run_status", *RUN_STATUSES), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=True),
        sa.Column("fraction", sa.Double(), nullable=False),
        sa.Column("eta_seconds", sa.Double(), nullable=True),
        sa.Column("latest_metrics", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        _ts("heartbeat_at", nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        # Its foreign key to models is added below, once models exists.
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_runs_attempts_non_negative")),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_runs_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_runs_tenant_id_idempotency_key")
        ),
    )
    op.create_index("ix_runs_dataset_id_status", "runs", ["dataset_id", "status"])
    op.create_index("ix_runs_status_heartbeat_at", "runs", ["status", "heartbeat_at"])
    op.create_index("ix_runs_tenant_id_created_at_id", "runs", ["tenant_id", "created_at", "id"])
    op.create_table(
        "run_epochs",
        _id(),
        *_tenant("run_epochs"),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Double(), nullable=False),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("train_accuracy", sa.Double(), nullable=True),
        sa.Column("val_accuracy", sa.Double(), nullable=True),
        sa.Column("learning_rate", sa.Double(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint("epoch >= 0", name=op.f("ck_run_epochs_epoch_non_negative")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_epochs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_epochs")),
        sa.UniqueConstraint("run_id", "epoch", name=op.f("uq_run_epochs_run_id_epoch")),
    )
    op.create_table(
        "checkpoints",
        _id(),
        *_tenant("checkpoints"),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("epoch >= 0", name=op.f("ck_checkpoints_epoch_non_negative")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_checkpoints_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint("run_id", "epoch", name=op.f("uq_checkpoints_run_id_epoch")),
    )
    op.create_table(
        "models",
        _id(),
        *_tenant("models"),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("task", _enum("task", *TASKS), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_models_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("run_id", name=op.f("uq_models_run_id")),
    )
    op.create_index(
        "ix_models_tenant_id_created_at_id", "models", ["tenant_id", "created_at", "id"]
    )
    # runs <-> models reference each other. On SQLite batch mode rebuilds the (empty) table.
    with op.batch_alter_table("runs") as batch:
        batch.create_foreign_key(
            op.f("fk_runs_model_id_models"), "models", ["model_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("fk_runs_model_id_models"), type_="foreignkey")
    op.drop_index("ix_models_tenant_id_created_at_id", table_name="models")
    op.drop_table("models")
    op.drop_table("checkpoints")
    op.drop_table("run_epochs")
    op.drop_index("ix_runs_tenant_id_created_at_id", table_name="runs")
    op.drop_index("ix_runs_status_heartbeat_at", table_name="runs")
    op.drop_index("ix_runs_dataset_id_status", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_datasets_tenant_id_created_at_id", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("api_keys")
    op.drop_table("tenants")
