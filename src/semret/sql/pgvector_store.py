"""The pgvector copy of the stored hashes: codes as ``bit`` and embeddings as ``vector``, with an
HNSW index per hash model and collection, for semantic-hash search inside PostgreSQL.

Where PostgreSQL has the ``vector`` extension (pgvector, https://github.com/pgvector/pgvector),
migration 0007 creates the table ``image_hash_vectors``: one row per ``image_hashes`` row (its key,
the image's collection and id, the code as ``bit varying`` and the raw float32 embedding as
``vector``), filled from the stored bytes, deleted with them (a foreign key with ON DELETE
CASCADE). ``image_hashes`` keeps the bytes: they stay the source of truth, so a downgrade only
drops this table. The table is not part of `semret.sql.models` (SQLite and PostgreSQL without
pgvector do not have it); `TABLE` describes it for the store's writes.

pgvector indexes need a fixed size, while code lengths vary per hash model; so each (model,
collection) gets a partial expression index, made when its hashes are stored::

    CREATE INDEX ... USING hnsw ((code::bit(48)) bit_hamming_ops)
        WHERE model_id = 3 AND collection_id = 1

and a query that orders by ``(code::bit(48)) <~> :query`` under the same WHERE uses it. Where the
table is missing, the store searches with ``bit_count`` over BIGINT codes (`SqlHammingSearcher`)
or in memory; `hash_search_path` says which path a database gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.exc import DBAPIError

from semret.core.codes import unpack_codes
from semret.sql.bulk import BATCH_ROWS, MergeCounts, stage_and_merge
from semret.sql.engine import connect

TABLE_NAME = "image_hash_vectors"
#: The table's definition, for writes (the migration creates it; it is in no model metadata).
TABLE = Table(
    TABLE_NAME,
    MetaData(),
    Column("model_id", Integer, nullable=False),
    Column("image_key", BigInteger, nullable=False),
    Column("collection_id", Integer, nullable=False),
    Column("image_id", BigInteger, nullable=False),
    Column("code", BIT(varying=True), nullable=False),
    Column("embedding", VECTOR(), nullable=False),
    PrimaryKeyConstraint("model_id", "image_key", name="pk_image_hash_vectors"),
)
#: The table as migration 0007 creates it: its rows go with their ``image_hashes`` rows.
CREATE_TABLE = f"""
CREATE TABLE {TABLE_NAME} (
    model_id INTEGER NOT NULL,
    image_key BIGINT NOT NULL,
    collection_id INTEGER NOT NULL,
    image_id BIGINT NOT NULL,
    code BIT VARYING NOT NULL,
    embedding VECTOR NOT NULL,
    CONSTRAINT pk_{TABLE_NAME} PRIMARY KEY (model_id, image_key),
    CONSTRAINT fk_{TABLE_NAME}_image_hashes FOREIGN KEY (model_id, image_key)
        REFERENCES image_hashes (model_id, image_key) ON DELETE CASCADE
)"""
#: HNSW build settings: m = 8 links per node (pgvector's default is 16), ef_construction = 64
#: (its default). On 48-bit codes of 100,000 images (benchmarks/pg_hash_search.py) m = 8 gave a
#: slightly higher recall@10 at the same queries/s than m = 16 (0.98 against 0.96 at ef_search 80
#: and 40), built in 13 s: with few distinct distances, fewer links per node cost less per hop.
HNSW_M = 8
HNSW_EF_CONSTRUCTION = 64


#: The oldest pgvector semret uses: HNSW on bit vectors (``bit_hamming_ops``) came in 0.7, the
#: iterative index scans the approximate search sets (``hnsw.iterative_scan``) in 0.8.
MIN_VERSION = (0, 8)


def too_old(version: str) -> bool:
    """Whether a pgvector ``extversion`` is older than `MIN_VERSION`."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) < MIN_VERSION


@dataclass(frozen=True)
class Pgvector:
    """Whether a database searches hashes with pgvector: ``version`` of the extension when its
    table is there, else None, and ``reason``, a line saying why not."""

    version: str | None
    reason: str

    @property
    def enabled(self) -> bool:
        return self.version is not None


def pgvector_state(conn: Connection) -> Pgvector:
    """Whether this database has the pgvector copy of the hashes (and why not)."""
    if conn.dialect.name != "postgresql":
        return Pgvector(None, f"{conn.dialect.name} has no pgvector")
    version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    if version is None:
        available = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
        why = "its extension is not created" if available else "the server has no vector extension"
        return Pgvector(None, f"no pgvector: {why}")
    if too_old(str(version)):
        wanted = ".".join(map(str, MIN_VERSION))
        return Pgvector(None, f"pgvector {version} is older than {wanted}, which semret needs")
    if conn.execute(text("SELECT to_regclass(:name)"), {"name": TABLE_NAME}).scalar() is None:
        return Pgvector(
            None,
            f"pgvector {version} is there, but not the table {TABLE_NAME} (it came after migration 0007: "
            "`semret db downgrade 0006` then `semret db upgrade` makes it)",
        )
    return Pgvector(str(version), f"pgvector {version}")


def pgvector_enabled(engine: Engine) -> bool:
    """True where the store keeps (and searches) the pgvector copy of the hashes."""
    if engine.dialect.name != "postgresql":
        return False
    with connect(engine) as conn:
        return pgvector_state(conn).enabled


def hash_search_path(engine: Engine) -> str:
    """One line saying how this database's semantic-hash search runs."""
    with connect(engine) as conn:
        state = pgvector_state(conn)
    if state.enabled:
        return f"{state.reason}: bit(n) Hamming (HNSW or exact scan) and cosine re-rank in one SQL statement"
    if engine.dialect.name == "postgresql":
        return f"bit_count scan over BIGINT codes, codes of at most 64 bits ({state.reason})"
    return f"in memory over the stored codes ({state.reason})"


# --- schema (migration 0007) -------------------------------------------------------------------


def create_extension(conn: Connection) -> str | None:
    """Create the ``vector`` extension where the server has it and the role may; return None on
    success, else why not. A failure is rolled back to a savepoint, so the caller goes on."""
    if conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar() is None:
        return "the server has no vector extension"
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except DBAPIError as exc:
        return f"CREATE EXTENSION vector failed ({str(exc.orig).strip().splitlines()[0]})"
    version = str(conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar())
    if too_old(version):
        return f"pgvector {version} is older than {'.'.join(map(str, MIN_VERSION))}, which semret needs"
    return None


def create_table(conn: Connection) -> None:
    """Create ``image_hash_vectors``, fill it from ``image_hashes`` and index it (0007's upgrade)."""
    conn.execute(text(CREATE_TABLE))
    fill_from_hashes(conn)


def drop_table(conn: Connection) -> None:
    """Drop ``image_hash_vectors`` and its indexes (0007's downgrade: the bytes stay)."""
    conn.execute(text(f"DROP TABLE IF EXISTS {TABLE_NAME}"))


def fill_from_hashes(conn: Connection, batch: int = 50_000) -> None:
    """Copy every stored hash into the table (model by model, ``batch`` rows at a time by image
    key, so that a large store is not read into memory at once), then index each (model,
    collection)."""
    models = conn.execute(text("SELECT id, n_bits, embedding_dim FROM hash_models ORDER BY id")).all()
    for model_id, n_bits, dim in models:
        collections: set[int] = set()
        after = -1
        while True:
            rows = conn.execute(
                text(
                    "SELECT h.image_key, i.collection_id, i.image_id, h.code, h.embedding FROM image_hashes h "
                    "JOIN images i ON i.id = h.image_key WHERE h.model_id = :model AND h.image_key > :after "
                    "ORDER BY h.image_key LIMIT :batch"
                ),
                {"model": model_id, "after": after, "batch": batch},
            ).all()
            if not rows:
                break
            codes = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.uint8).reshape(len(rows), -1)
            embeddings = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            keys = [(int(r[0]), int(r[1]), int(r[2])) for r in rows]
            stage_and_merge(conn, TABLE, *_columns(), _rows(model_id, keys, codes, embeddings, n_bits))
            collections |= {key[1] for key in keys}
            after = keys[-1][0]
        for collection in sorted(collections):
            ensure_index(conn, model_id, collection, n_bits)


# --- writes --------------------------------------------------------------------------------------


def _columns() -> tuple[tuple[str, str], tuple[str, str, str, str]]:
    return ("model_id", "image_key"), ("collection_id", "image_id", "code", "embedding")


def bit_strings(codes: npt.NDArray[np.uint8], n_bits: int) -> list[str]:
    """Packed codes as PostgreSQL bit strings ('0110...'), bit i of a code at position i."""
    digits = unpack_codes(codes, n_bits) + np.uint8(ord("0"))
    return [row.tobytes().decode("ascii") for row in digits]


def vector_text(embedding: npt.NDArray[np.float32]) -> str:
    """A float32 vector as pgvector's text form, exactly (17 digits of its float64 value)."""
    return "[" + ",".join(repr(value) for value in embedding.astype(np.float64).tolist()) + "]"


def _rows(
    model_id: int,
    keys: list[tuple[int, int, int]],
    codes: npt.NDArray[np.uint8],
    embeddings: npt.NDArray[np.float32],
    n_bits: int,
) -> Iterator[tuple[int, int, int, int, str, str]]:
    for start in range(0, len(keys), BATCH_ROWS):  # the text forms are made a batch at a time
        stop = start + BATCH_ROWS
        bits = bit_strings(codes[start:stop], n_bits)
        for (key, collection, image), code, vector in zip(keys[start:stop], bits, embeddings[start:stop], strict=True):
            yield model_id, key, collection, image, code, vector_text(vector)


def store_vectors(
    conn: Connection,
    model_id: int,
    n_bits: int,
    collection_id: int,
    keys: Iterable[tuple[int, int]],
    codes: npt.NDArray[np.uint8],
    embeddings: npt.NDArray[np.float32],
) -> MergeCounts:
    """Write the pgvector copy of stored hashes (``keys``: (image key, image id) per row, in the
    order of ``codes`` and ``embeddings``), then make sure the (model, collection) is indexed.
    Storing the same again writes nothing."""
    rows = [(key, collection_id, image) for key, image in keys]
    counts = stage_and_merge(conn, TABLE, *_columns(), _rows(model_id, rows, codes, embeddings, n_bits))
    ensure_index(conn, model_id, collection_id, n_bits)
    return counts


def index_name(model_id: int, collection_id: int, n_bits: int) -> str:
    """The HNSW index of a (model, collection), named by its code length too."""
    return f"ix_{TABLE_NAME}_hnsw_m{int(model_id)}_c{int(collection_id)}_b{int(n_bits)}"


def code_expression(n_bits: int, alias: str = "") -> str:
    """The indexed expression: the code at the model's fixed length."""
    return f"({alias}code::bit({int(n_bits)}))"


def partial_predicate(model_id: int, collection_id: int, alias: str = "") -> str:
    """The partial index's WHERE clause, written the same in queries so that the index applies."""
    return f"{alias}model_id = {int(model_id)} AND {alias}collection_id = {int(collection_id)}"


def ensure_index(conn: Connection, model_id: int, collection_id: int, n_bits: int) -> None:
    """Create the (model, collection)'s HNSW index on its codes if missing (``bit_hamming_ops``),
    dropping one made for another code length (a model retrained under the same name)."""
    name = index_name(model_id, collection_id, n_bits)
    stale = conn.execute(
        text("SELECT indexname FROM pg_indexes WHERE tablename = :table AND indexname LIKE :pattern"),
        {"table": TABLE_NAME, "pattern": f"ix_{TABLE_NAME}_hnsw_m{int(model_id)}_c{int(collection_id)}_b%"},
    ).scalars()
    for old in [found for found in stale if found != name]:
        conn.execute(text(f'DROP INDEX IF EXISTS "{old}"'))
    conn.execute(
        text(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON {TABLE_NAME} USING hnsw '
            f"({code_expression(n_bits)} bit_hamming_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
            f"WHERE {partial_predicate(model_id, collection_id)}"
        )
    )
