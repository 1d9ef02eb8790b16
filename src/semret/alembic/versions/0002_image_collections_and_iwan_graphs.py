"""Image collections, their images and predicted words (IWAN), and built IWAN word graphs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_images_collection_id_collections"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("collection_id", "image_id", name=op.f("uq_images_collection_id_image_id")),
    )
    op.create_table(
        "iwan_graphs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("top_iwk", sa.Integer(), nullable=False),
        sa.Column("top_wwk", sa.Integer(), nullable=False),
        sa.Column("normed_only", sa.Boolean(), nullable=False),
        sa.Column("backward", sa.Boolean(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_iwan_graphs_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iwan_graphs")),
        sa.UniqueConstraint("collection_id", name=op.f("uq_iwan_graphs_collection_id")),
    )
    op.create_table(
        "image_words",
        sa.Column("image_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("word_id", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_key"], ["images.id"], name=op.f("fk_image_words_image_key_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["word_id"], ["words.id"], name=op.f("fk_image_words_word_id_words")),
        sa.PrimaryKeyConstraint("image_key", "rank", name=op.f("pk_image_words")),
        sa.UniqueConstraint("image_key", "word_id", name=op.f("uq_image_words_image_key_word_id")),
    )
    op.create_index("ix_image_words_word_id", "image_words", ["word_id"])
    op.create_table(
        "iwan_word_edges",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("source_word_id", sa.Integer(), nullable=False),
        sa.Column("target_word_id", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["iwan_graphs.id"], name=op.f("fk_iwan_word_edges_graph_id_iwan_graphs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["source_word_id"], ["words.id"], name=op.f("fk_iwan_word_edges_source_word_id_words")),
        sa.ForeignKeyConstraint(["target_word_id"], ["words.id"], name=op.f("fk_iwan_word_edges_target_word_id_words")),
        sa.PrimaryKeyConstraint("graph_id", "source_word_id", "target_word_id", name=op.f("pk_iwan_word_edges")),
    )


def downgrade() -> None:
    op.drop_table("iwan_word_edges")
    op.drop_index("ix_image_words_word_id", table_name="image_words")
    op.drop_table("image_words")
    op.drop_table("iwan_graphs")
    op.drop_table("images")
    op.drop_table("collections")
