"""Semantic hash models, and each image's embedding and binary code under a model.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hash_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("n_bits", sa.Integer(), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("checkpoint_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_models")),
        sa.UniqueConstraint("name", name=op.f("uq_hash_models_name")),
    )
    op.create_table(
        "image_hashes",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("image_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.LargeBinary(), nullable=False),
        sa.Column("code_int", sa.BigInteger(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_key"], ["images.id"], name=op.f("fk_image_hashes_image_key_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["hash_models.id"], name=op.f("fk_image_hashes_model_id_hash_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", "image_key", name=op.f("pk_image_hashes")),
    )


def downgrade() -> None:
    op.drop_table("image_hashes")
    op.drop_table("hash_models")
