"""Images get the dataset split they belong to and the source of their pixels; collections the
dataset they were imported from.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place; on PostgreSQL these are plain ALTER TABLEs
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("split", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("dataset", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("dataset")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("source")
        batch.drop_column("split")
