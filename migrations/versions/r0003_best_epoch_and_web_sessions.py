"""Runs remember their best epoch (lowest validation loss) so lists sort by it; dashboard
sign-ins get a table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Existing runs are filled in from their recorded epochs, with SQL frozen here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METRIC_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("best_loss", sa.Double(), nullable=True))
        batch.add_column(sa.Column("best_metrics", sa.JSON(), nullable=True))
        batch.create_index("ix_runs_tenant_id_best_loss", ["tenant_id", "best_loss"])
    _backfill_best()
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_web_sessions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_web_sessions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])


def _backfill_best() -> None:
    epochs = sa.table(
        "run_epochs",
        sa.column("run_id", sa.Uuid()),
        sa.column("epoch", sa.Integer()),
        *(sa.column(k, sa.Double()) for k in _METRIC_KEYS),
    )
    runs = sa.table(
        "runs",
        sa.column("id", sa.Uuid()),
        sa.column("best_epoch", sa.Integer()),
        sa.column("best_loss", sa.Double()),
        sa.column("best_metrics", sa.JSON()),
    )
    loss = sa.func.coalesce(epochs.c.val_loss, epochs.c.train_loss)
    ranked = sa.select(
        epochs,
        loss.label("loss"),
        sa.func.row_number()
        .over(partition_by=epochs.c.run_id, order_by=(loss, epochs.c.epoch))
        .label("rank"),
    ).subquery()
    connection = op.get_bind()
    best = connection.execute(sa.select(ranked).where(ranked.c.rank == 1)).mappings().all()
    for row in best:
        metrics = {k: row[k] for k in _METRIC_KEYS if row[k] is not None}
        connection.execute(
            runs.update()
            .where(runs.c.id == row["run_id"])
            .values(best_epoch=row["epoch"], best_loss=row["loss"], best_metrics=metrics)
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_tenant_id_best_loss")
        batch.drop_column("best_metrics")
        batch.drop_column("best_loss")
        batch.drop_column("best_epoch")
