"""Hyperparameter sweeps: the ``sweeps`` table, and on runs the trial's sweep, number,
parameters and ASHA state; a run may be ``pending`` (a trial waiting for a slot).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Existing runs are no trials: the new columns are NULL (``stopped_early`` false) for all of them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
_NEW_STATUSES = ("pending", *_OLD_STATUSES)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("search", sa.JSON(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "min",
                "max",
                name="sweep_mode",
                native_enum=False,
                length=16,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("early_termination", sa.JSON(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "succeeded",
                "failed",
                "cancelled",
                name="sweep_status",
                native_enum=False,
                length=16,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("max_parallel >= 1", name=op.f("ck_sweeps_max_parallel_positive")),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_sweeps_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sweeps_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_index(
        "ix_sweeps_tenant_id_created_at_id", "sweeps", ["tenant_id", "created_at", "id"]
    )
    # Batch mode: SQLite cannot add a foreign key or swap a CHECK in place; it rebuilds "runs".
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("rung", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("stopped_early", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_foreign_key(
            op.f("fk_runs_sweep_id_sweeps"), "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_runs_sweep_id_status", ["sweep_id", "status"])
        batch.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        batch.create_check_constraint("run_status", _in("status", _NEW_STATUSES))


def downgrade() -> None:
    # A pending trial has never been sent to a worker: without sweeps it is simply cancelled.
    op.execute("UPDATE runs SET status = 'cancelled' WHERE status = 'pending'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        batch.create_check_constraint("run_status", _in("status", _OLD_STATUSES))
        batch.drop_index("ix_runs_sweep_id_status")
        batch.drop_constraint(op.f("fk_runs_sweep_id_sweeps"), type_="foreignkey")
        batch.drop_column("stopped_early")
        batch.drop_column("rung")
        batch.drop_column("params")
        batch.drop_column("trial")
        batch.drop_column("sweep_id")
    op.drop_index("ix_sweeps_tenant_id_created_at_id", table_name="sweeps")
    op.drop_table("sweeps")
