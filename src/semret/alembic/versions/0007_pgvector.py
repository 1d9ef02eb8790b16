"""pgvector: where PostgreSQL has the ``vector`` extension, a copy of the stored hashes with codes as
``bit`` and embeddings as ``vector``, and an HNSW index on the codes per hash model and collection.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

On PostgreSQL whose server has pgvector, the upgrade creates the extension (where the role may),
the table ``image_hash_vectors`` (`semret.sql.pgvector_store`), fills it from ``image_hashes``
and builds the indexes. On SQLite, and on PostgreSQL without pgvector, nothing changes: the
semantic-hash search stays on ``bit_count`` (or in memory), and `semret db current` says so.
The bytes in ``image_hashes`` stay the source of truth, so the downgrade drops the table and
keeps every row; the extension itself is left in place (other tables may use it).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from semret.sql import pgvector_store

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or pgvector_store.create_extension(conn) is not None:
        return  # no pgvector here: the bit_count path stays
    pgvector_store.create_table(conn)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        pgvector_store.drop_table(conn)
