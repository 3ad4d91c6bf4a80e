"""Warm start: a run may start from a model's weights (``runs.init_model_id``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Existing runs started from scratch, so the new column is NULL for all of them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key to an existing table, so it rebuilds "runs".
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("init_model_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_runs_init_model_id_models"),
            "models",
            ["init_model_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("fk_runs_init_model_id_models"), type_="foreignkey")
        batch.drop_column("init_model_id")
