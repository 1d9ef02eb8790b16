"""The published IWAN graph next to semret's: images' top-10 ImageNet words, and a graph's scheme,
label strength, word nodes, node edges and image links.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A downgrade removes the published graphs (their nodes, edges and links have no place below this
revision, and an ``iwan_graphs`` row without them would read as a semret graph without edges);
semret's own graphs, images and words are kept both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IMAGE_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("iwan_graphs") as batch:
        batch.add_column(sa.Column("scheme", sa.String(length=16), server_default="iwan", nullable=False))
        batch.add_column(sa.Column("label_strength", sa.Float(), nullable=True))
    op.create_table(
        "image_imagenet_words",
        sa.Column("image_key", _IMAGE_KEY, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_key"], ["images.id"], name=op.f("fk_image_imagenet_words_image_key_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("image_key", "rank", name=op.f("pk_image_imagenet_words")),
    )
    op.create_table(
        "iwan_graph_nodes",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("lookup", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["iwan_graphs.id"], name=op.f("fk_iwan_graph_nodes_graph_id_iwan_graphs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("graph_id", "node", name=op.f("pk_iwan_graph_nodes")),
        sa.UniqueConstraint("graph_id", "name", name=op.f("uq_iwan_graph_nodes_graph_id_name")),
    )
    op.create_table(
        "iwan_node_edges",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("source_node", sa.Integer(), nullable=False),
        sa.Column("target_node", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["iwan_graphs.id"], name=op.f("fk_iwan_node_edges_graph_id_iwan_graphs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("graph_id", "source_node", "target_node", name=op.f("pk_iwan_node_edges")),
    )
    op.create_table(
        "iwan_graph_links",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("image_key", _IMAGE_KEY, nullable=False),
        sa.Column("node", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["graph_id"], ["iwan_graphs.id"], name=op.f("fk_iwan_graph_links_graph_id_iwan_graphs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_key"], ["images.id"], name=op.f("fk_iwan_graph_links_image_key_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("graph_id", "image_key", "node", name=op.f("pk_iwan_graph_links")),
    )
    op.create_index("ix_iwan_graph_links_graph_id_node", "iwan_graph_links", ["graph_id", "node"])


def downgrade() -> None:
    op.drop_index("ix_iwan_graph_links_graph_id_node", table_name="iwan_graph_links")
    op.drop_table("iwan_graph_links")
    op.drop_table("iwan_node_edges")
    op.drop_table("iwan_graph_nodes")
    op.drop_table("image_imagenet_words")
    # published graphs cannot be held below this revision (foreign keys may be off: no cascade)
    published = "SELECT id FROM iwan_graphs WHERE scheme = 'published'"
    op.execute(f"DELETE FROM iwan_word_edges WHERE graph_id IN ({published})")
    op.execute("DELETE FROM iwan_graphs WHERE scheme = 'published'")
    with op.batch_alter_table("iwan_graphs") as batch:
        batch.drop_column("label_strength")
        batch.drop_column("scheme")
