"""USF free-association norms: words, norm sources and cue-target pairs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "words",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("word", sa.String(length=128), nullable=False),
        sa.Column("spelling", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_words")),
        sa.UniqueConstraint("word", name=op.f("uq_words_word")),
    )
    op.create_table(
        "norm_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("skipped_rows", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_norm_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_norm_sources_name")),
    )
    op.create_table(
        "norm_pairs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cue_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("normed", sa.Boolean(), nullable=False),
        sa.Column("group_size", sa.Integer(), nullable=False),
        sa.Column("producers", sa.Integer(), nullable=False),
        sa.Column("fsg", sa.Float(), nullable=False),
        sa.Column("bsg", sa.Float(), nullable=True),
        sa.Column("msg", sa.Float(), nullable=True),
        sa.Column("osg", sa.Float(), nullable=True),
        sa.Column("mediators", sa.Integer(), nullable=True),
        sa.Column("mediators_missing", sa.Integer(), nullable=True),
        sa.Column("overlaps", sa.Float(), nullable=True),
        sa.Column("overlaps_missing", sa.Integer(), nullable=True),
        sa.Column("cue_set_size", sa.Integer(), nullable=True),
        sa.Column("cue_frequency", sa.Integer(), nullable=True),
        sa.Column("cue_concreteness", sa.Float(), nullable=True),
        sa.Column("cue_homograph", sa.String(length=8), nullable=True),
        sa.Column("cue_part_of_speech", sa.String(length=8), nullable=True),
        sa.Column("cue_mean_connectivity", sa.Float(), nullable=True),
        sa.Column("cue_resonance_probability", sa.Float(), nullable=True),
        sa.Column("cue_resonant_strength", sa.Float(), nullable=True),
        sa.Column("cue_use_code", sa.Integer(), nullable=True),
        sa.Column("target_set_size", sa.Integer(), nullable=True),
        sa.Column("target_frequency", sa.Integer(), nullable=True),
        sa.Column("target_concreteness", sa.Float(), nullable=True),
        sa.Column("target_homograph", sa.String(length=8), nullable=True),
        sa.Column("target_part_of_speech", sa.String(length=8), nullable=True),
        sa.Column("target_mean_connectivity", sa.Float(), nullable=True),
        sa.Column("target_resonance_probability", sa.Float(), nullable=True),
        sa.Column("target_resonant_strength", sa.Float(), nullable=True),
        sa.Column("target_use_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["cue_id"], ["words.id"], name=op.f("fk_norm_pairs_cue_id_words")),
        sa.ForeignKeyConstraint(["target_id"], ["words.id"], name=op.f("fk_norm_pairs_target_id_words")),
        sa.ForeignKeyConstraint(["source_id"], ["norm_sources.id"], name=op.f("fk_norm_pairs_source_id_norm_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_norm_pairs")),
        sa.UniqueConstraint("cue_id", "target_id", name=op.f("uq_norm_pairs_cue_id_target_id")),
    )
    op.create_index("ix_norm_pairs_target_id", "norm_pairs", ["target_id"])
    op.create_index("ix_norm_pairs_source_id", "norm_pairs", ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_norm_pairs_source_id", table_name="norm_pairs")
    op.drop_index("ix_norm_pairs_target_id", table_name="norm_pairs")
    op.drop_table("norm_pairs")
    op.drop_table("norm_sources")
    op.drop_table("words")
