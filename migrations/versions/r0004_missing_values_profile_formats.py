"""Datasets report their missing values and keep their profile; Parquet and image archives
become formats (an image dataset keeps the size and colour mode its pictures were made).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Rows uploaded before this had no missing values (they were refused), so ``missing`` is filled
as {}; their profile is computed the first time it is asked for.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_FORMATS = ("csv", "npz", "json")
_NEW_FORMATS = (*_OLD_FORMATS, "parquet", "images")


def _formats(values: tuple[str, ...]) -> str:
    return "format IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("missing", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("profile", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("image_shape", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("task_note", sa.Text(), nullable=True))
        batch.drop_constraint(op.f("ck_datasets_dataset_format"), type_="check")
        batch.create_check_constraint("dataset_format", _formats(_NEW_FORMATS))
    datasets = sa.table("datasets", sa.column("missing", sa.JSON()))
    op.get_bind().execute(datasets.update().values(missing={}))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint(op.f("ck_datasets_dataset_format"), type_="check")
        batch.create_check_constraint("dataset_format", _formats(_OLD_FORMATS))
        batch.drop_column("task_note")
        batch.drop_column("image_shape")
        batch.drop_column("profile")
        batch.drop_column("missing")
