"""Datasets carry what submit and validate need, so neither reads a dataset blob: the network's
input width (numeric features plus every one-hot column) and the rows per class.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Existing rows are filled in from their stored NPZ (read with allow_pickle=False), frozen here
rather than calling ``core`` so later code changes cannot rewrite this step.
"""

import io
import json
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _shape_of(blob: bytes) -> tuple[int, list[int] | None]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        meta = json.loads(arrays["meta"].tobytes())
        n_numeric = sum(1 for t in meta["feature_types"] if t == "numeric")
        n_inputs = n_numeric + sum(len(c) for c in meta["categories"])
        classes = meta["classes"]
        if classes is None:
            return n_inputs, None
        codes = np.searchsorted(np.asarray(classes), arrays["y"])
        return n_inputs, np.bincount(codes, minlength=len(classes)).tolist()


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("n_inputs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("class_counts", sa.JSON(), nullable=True))
    datasets = sa.table(
        "datasets",
        sa.column("id", sa.Uuid()),
        sa.column("blob", sa.LargeBinary()),
        sa.column("n_inputs", sa.Integer()),
        sa.column("class_counts", sa.JSON()),
    )
    connection = op.get_bind()
    ids = connection.execute(sa.select(datasets.c.id)).scalars().all()
    for dataset_id in ids:  # one blob in memory at a time
        blob = connection.execute(
            sa.select(datasets.c.blob).where(datasets.c.id == dataset_id)
        ).scalar_one()
        n_inputs, counts = _shape_of(blob)
        connection.execute(
            datasets.update()
            .where(datasets.c.id == dataset_id)
            .values(n_inputs=n_inputs, class_counts=counts)
        )
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("n_inputs", existing_type=sa.Integer(), nullable=False)
        batch.create_check_constraint("n_inputs_positive", "n_inputs > 0")


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint(op.f("ck_datasets_n_inputs_positive"), type_="check")
        batch.drop_column("class_counts")
        batch.drop_column("n_inputs")
