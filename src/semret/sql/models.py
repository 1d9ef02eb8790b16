"""SQLAlchemy models of semret's store.

The norms side mirrors the USF Appendix A files: one `Word` per distinct word, one `NormPair` per
cue-target line (all 31 fields, typed, ``?`` stored as NULL) and one `NormSource` per loaded file.
`Word.id` is the key that the image side (image-word links of IWAN) joins on. The schema itself
is made only by the Alembic migrations in ``semret/alembic``; a test checks that they match.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so that migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Word(Base):
    """A word of the norms: ``word`` is the normalised key (upper case, single spaces), ``spelling``
    the text as first seen in a source file."""

    __tablename__ = "words"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    word: Mapped[str] = mapped_column(String(128), unique=True)
    spelling: Mapped[str] = mapped_column(String(128))


class NormSource(Base):
    """A norms file that was loaded: its name (the identity: reloading a file of the same name
    replaces its rows), checksum, row counts and when it was loaded."""

    __tablename__ = "norm_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    skipped_rows: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NormPair(Base):
    """One cue -> target line of the USF norms (Nelson, McEvoy & Schreiber 2004, Appendix A).

    Column names spell out the Appendix A abbreviations: ``group_size`` is #G, ``producers`` #P,
    ``fsg``/``bsg``/``msg``/``osg`` the forward, backward, mediated and overlapping strengths,
    ``cue_*``/``target_*`` the Q*/T* word statistics (set size, frequency, concreteness, homograph
    code, part of speech, mean connectivity, resonance probability, resonant strength, use code).
    """

    __tablename__ = "norm_pairs"
    __table_args__ = (
        UniqueConstraint("cue_id", "target_id"),
        Index("ix_norm_pairs_target_id", "target_id"),
        Index("ix_norm_pairs_source_id", "source_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cue_id: Mapped[int] = mapped_column(ForeignKey("words.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("words.id"))
    source_id: Mapped[int] = mapped_column(ForeignKey("norm_sources.id"))
    normed: Mapped[bool] = mapped_column(Boolean)
    group_size: Mapped[int] = mapped_column(Integer)
    producers: Mapped[int] = mapped_column(Integer)
    fsg: Mapped[float] = mapped_column(Float)
    bsg: Mapped[float | None] = mapped_column(Float)
    msg: Mapped[float | None] = mapped_column(Float)
    osg: Mapped[float | None] = mapped_column(Float)
    mediators: Mapped[int | None] = mapped_column(Integer)
    mediators_missing: Mapped[int | None] = mapped_column(Integer)
    overlaps: Mapped[float | None] = mapped_column(Float)
    overlaps_missing: Mapped[int | None] = mapped_column(Integer)
    cue_set_size: Mapped[int | None] = mapped_column(Integer)
    cue_frequency: Mapped[int | None] = mapped_column(Integer)
    cue_concreteness: Mapped[float | None] = mapped_column(Float)
    cue_homograph: Mapped[str | None] = mapped_column(String(8))
    cue_part_of_speech: Mapped[str | None] = mapped_column(String(8))
    cue_mean_connectivity: Mapped[float | None] = mapped_column(Float)
    cue_resonance_probability: Mapped[float | None] = mapped_column(Float)
    cue_resonant_strength: Mapped[float | None] = mapped_column(Float)
    cue_use_code: Mapped[int | None] = mapped_column(Integer)
    target_set_size: Mapped[int | None] = mapped_column(Integer)
    target_frequency: Mapped[int | None] = mapped_column(Integer)
    target_concreteness: Mapped[float | None] = mapped_column(Float)
    target_homograph: Mapped[str | None] = mapped_column(String(8))
    target_part_of_speech: Mapped[str | None] = mapped_column(String(8))
    target_mean_connectivity: Mapped[float | None] = mapped_column(Float)
    target_resonance_probability: Mapped[float | None] = mapped_column(Float)
    target_resonant_strength: Mapped[float | None] = mapped_column(Float)
    target_use_code: Mapped[int | None] = mapped_column(Integer)


class Collection(Base):
    """A named set of images that semret retrieves from (a dataset split, a folder...); ``dataset``
    is the registry name of the dataset it was imported from (``semret collection import``)."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dataset: Mapped[str | None] = mapped_column(String(64))


class Image(Base):
    """An image of a collection. ``image_id`` is the caller's own integer id (a dataset index, say),
    unique within the collection; ``id`` is the store's key that other tables reference. ``split``
    is the dataset split it belongs to (train, test...), ``source`` where its pixels come from (an
    image file, or ``file#index`` in a dataset file)."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("collection_id", "image_id"),
        # what the links' copies of (collection_id, image_id) are checked against (revision 0006)
        Index("ix_images_collection_id_image_id_id", "collection_id", "image_id", "id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str | None] = mapped_column(String(255))
    split: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(1024))


class ImageWord(Base):
    """One of an image's predicted words (IWAN): its rank among the image's words (1 = most
    probable) and its strength (the predicted probability of the word's classes). The image's
    collection and image id are copied in (held to the image's by the foreign key), so that
    ``ix_image_words_word_order`` reads a word's links of one collection best first, ties by image id
    (the SQL image ranker's order)."""

    __tablename__ = "image_words"
    __table_args__ = (
        UniqueConstraint("image_key", "word_id"),
        ForeignKeyConstraint(
            ["collection_id", "image_id", "image_key"],
            ["images.collection_id", "images.image_id", "images.id"],
            ondelete="CASCADE",
        ),
    )

    image_key: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    word_id: Mapped[int] = mapped_column(ForeignKey("words.id"))
    strength: Mapped[float] = mapped_column(Float)
    collection_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(BigInteger)


class IwanGraph(Base):
    """A built IWAN word graph for a collection: its settings and when it was built. Its word ->
    word edges are a snapshot (`IwanWordEdge`), so later norm loads do not change it."""

    __tablename__ = "iwan_graphs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), unique=True)
    top_iwk: Mapped[int] = mapped_column(Integer)
    top_wwk: Mapped[int] = mapped_column(Integer)
    normed_only: Mapped[bool] = mapped_column(Boolean)
    backward: Mapped[bool] = mapped_column(Boolean)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: "iwan" (semret's: `IwanWordEdge` edges, links from `ImageWord`) or "published" (the
    #: published graph: `IwanGraphNode`, `IwanNodeEdge`, `IwanGraphLink`).
    scheme: Mapped[str] = mapped_column(String(16), server_default="iwan")
    #: The published graph's image -> label link strength (None for "iwan").
    label_strength: Mapped[float | None] = mapped_column(Float)


class IwanWordEdge(Base):
    """A word -> word edge of a built IWAN graph, with the association strength it came from."""

    __tablename__ = "iwan_word_edges"

    graph_id: Mapped[int] = mapped_column(ForeignKey("iwan_graphs.id", ondelete="CASCADE"), primary_key=True)
    source_word_id: Mapped[int] = mapped_column(ForeignKey("words.id"), primary_key=True)
    target_word_id: Mapped[int] = mapped_column(ForeignKey("words.id"), primary_key=True)
    strength: Mapped[float] = mapped_column(Float)


class ImageImagenetWord(Base):
    """One of an image's top-10 ImageNet classes (the published IWAN's words): its rank (1 = most
    probable), its formatted class name (``GREAT WHITE SHARK``) and its predicted probability; with
    its image's collection and image id, as in `ImageWord` (revision 0006)."""

    __tablename__ = "image_imagenet_words"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "image_id", "image_key"],
            ["images.collection_id", "images.image_id", "images.id"],
            ondelete="CASCADE",
        ),
    )

    image_key: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    probability: Mapped[float] = mapped_column(Float)
    collection_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(BigInteger)


class IwanGraphNode(Base):
    """A word node of a published IWAN graph: its number in the graph, its name (an ImageNet name,
    a label or a norm word) and the norm word its associations were looked up by."""

    __tablename__ = "iwan_graph_nodes"
    __table_args__ = (UniqueConstraint("graph_id", "name"),)

    graph_id: Mapped[int] = mapped_column(ForeignKey("iwan_graphs.id", ondelete="CASCADE"), primary_key=True)
    node: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    lookup: Mapped[str] = mapped_column(String(128))


class IwanNodeEdge(Base):
    """A word edge of a published IWAN graph, one row per direction, with its strength (the
    stronger forward strength of the two nodes' lookup words)."""

    __tablename__ = "iwan_node_edges"

    graph_id: Mapped[int] = mapped_column(ForeignKey("iwan_graphs.id", ondelete="CASCADE"), primary_key=True)
    source_node: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_node: Mapped[int] = mapped_column(Integer, primary_key=True)
    strength: Mapped[float] = mapped_column(Float)


class IwanGraphLink(Base):
    """An image -> word node link of a published IWAN graph (the image's label or one of its
    top-IWK ImageNet names), a snapshot that the SQL image ranker reads by node, best first, ties by
    the image id copied in with the collection (as in `ImageWord`)."""

    __tablename__ = "iwan_graph_links"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "image_id", "image_key"],
            ["images.collection_id", "images.image_id", "images.id"],
            ondelete="CASCADE",
        ),
    )

    graph_id: Mapped[int] = mapped_column(ForeignKey("iwan_graphs.id", ondelete="CASCADE"), primary_key=True)
    image_key: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    node: Mapped[int] = mapped_column(Integer, primary_key=True)
    strength: Mapped[float] = mapped_column(Float)
    collection_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(BigInteger)


# the links of a word (node) best first, ties by image id: the SQL image ranker's order (revision 0006)
Index(
    "ix_image_words_word_order",
    ImageWord.word_id,
    ImageWord.collection_id,
    ImageWord.strength.desc(),
    ImageWord.image_id,
    ImageWord.rank,
)
Index(
    "ix_iwan_graph_links_node_order",
    IwanGraphLink.graph_id,
    IwanGraphLink.node,
    IwanGraphLink.collection_id,
    IwanGraphLink.strength.desc(),
    IwanGraphLink.image_id,
)


class HashModel(Base):
    """A trained semantic hash model known to the store: its name, code length, embedding size,
    config (JSON) and the checksum of the checkpoint its codes were made with."""

    __tablename__ = "hash_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    n_bits: Mapped[int] = mapped_column(Integer)
    embedding_dim: Mapped[int] = mapped_column(Integer)
    config: Mapped[str] = mapped_column(Text)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImageHash(Base):
    """An image's embedding (float32 bytes) and binary code (packed bytes) under one hash model.
    ``code_int`` holds codes of at most 64 bits as a signed integer, for Hamming search in SQL."""

    __tablename__ = "image_hashes"

    model_id: Mapped[int] = mapped_column(ForeignKey("hash_models.id", ondelete="CASCADE"), primary_key=True)
    image_key: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[bytes] = mapped_column(LargeBinary)
    code_int: Mapped[int | None] = mapped_column(BigInteger)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
