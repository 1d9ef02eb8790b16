"""Image links in ranking order: image words and published graph links (and images' ImageNet
words) carry their image's collection and image id, and an index reads each word's links of one
collection best first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The SQL image ranker (`semret.sql.iwan_store.SqlImageRanker`) takes only the best few links of
each reached word: ``ix_image_words_word_order`` (word, collection, strength descending, image id,
rank) and ``ix_iwan_graph_links_node_order`` (graph, node, collection, strength descending, image
id) give them
in the order of the ranking, ties by the user's image id, without reading a word's other links or
another collection's. The copied ``collection_id`` and ``image_id`` are held to the image's by a
foreign key on (collection_id, image_id, image_key) -> images (collection_id, image_id, id), which is
also the foreign key a distributed store needs (docs/scaling.md: Citus, distributed by collection;
``image_imagenet_words`` gets the same columns and key for that reason only).
Rows are kept both ways: the upgrade fills the new columns from ``images``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IMAGE_OF = ("collection_id", "image_id", "image_key")
_IMAGE_KEY = ("collection_id", "image_id", "id")
#: The tables that get a copy of their image's collection_id and image_id.
_COPIES = ("image_words", "iwan_graph_links", "image_imagenet_words")


def _copy_image_columns(table: str) -> None:
    for name in ("collection_id", "image_id"):
        op.execute(
            f"UPDATE {table} SET {name} = (SELECT images.{name} FROM images WHERE images.id = {table}.image_key)"
        )


def upgrade() -> None:
    op.create_index("ix_images_collection_id_image_id_id", "images", list(_IMAGE_KEY), unique=True)
    for table in _COPIES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("collection_id", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("image_id", sa.BigInteger(), nullable=True))
        _copy_image_columns(table)
        with op.batch_alter_table(table) as batch:
            batch.alter_column("collection_id", existing_type=sa.Integer(), nullable=False)
            batch.alter_column("image_id", existing_type=sa.BigInteger(), nullable=False)
            batch.drop_constraint(f"fk_{table}_image_key_images", type_="foreignkey")
            batch.create_foreign_key(
                f"fk_{table}_collection_id_images", "images", list(_IMAGE_OF), list(_IMAGE_KEY), ondelete="CASCADE"
            )
    op.drop_index("ix_image_words_word_id", table_name="image_words")
    op.create_index(
        "ix_image_words_word_order",
        "image_words",
        ["word_id", "collection_id", sa.text("strength DESC"), "image_id", "rank"],
    )
    op.drop_index("ix_iwan_graph_links_graph_id_node", table_name="iwan_graph_links")
    op.create_index(
        "ix_iwan_graph_links_node_order",
        "iwan_graph_links",
        ["graph_id", "node", "collection_id", sa.text("strength DESC"), "image_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_iwan_graph_links_node_order", table_name="iwan_graph_links")
    op.create_index("ix_iwan_graph_links_graph_id_node", "iwan_graph_links", ["graph_id", "node"])
    op.drop_index("ix_image_words_word_order", table_name="image_words")
    op.create_index("ix_image_words_word_id", "image_words", ["word_id"])
    for table in reversed(_COPIES):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_collection_id_images", type_="foreignkey")
            batch.create_foreign_key(
                f"fk_{table}_image_key_images", "images", ["image_key"], ["id"], ondelete="CASCADE"
            )
            batch.drop_column("image_id")
            batch.drop_column("collection_id")
    op.drop_index("ix_images_collection_id_image_id_id", table_name="images")
