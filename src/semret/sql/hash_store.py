"""Semantic hash models and their per-image embeddings and codes in the store.

Plain values in and out (a model's size and parameters, arrays of ids, embeddings and codes).
Writes are bulk, transactional and idempotent (staged merges); where PostgreSQL has pgvector
(migration 0007) they fill its copy of the hashes too (`semret.sql.pgvector_store`).
`hamming_searcher` is the one place that chooses where a stored collection's codes are searched:
inside PostgreSQL with pgvector (`PgvectorHashSearcher`, an exact scan of ``bit(n)`` codes, any
length), else with ``bit_count`` over the codes (`SqlHammingSearcher`, for codes of at most 64
bits, kept as BIGINT), else (SQLite has no such function) in memory on the stored codes
(`HammingIndex`), with the same results and tie order (by image id), behind semret's one search
contract. `hash_searcher` does the same for the Hamming shortlist + cosine re-rank; on pgvector
its default scan is the approximate one (HNSW: recall below 1, measured in docs/benchmarks.md),
its exact scan gives the in-memory results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, Engine, Table, bindparam, cast, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import BIT

from semret.core.codes import check_packed, codes_to_int64
from semret.core.hamming import HammingIndex, hamming_distances
from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.errors import SemretError
from semret.sql.bulk import MergeCounts, stage_and_merge
from semret.sql.engine import connect
from semret.sql.images_store import (
    IMAGES,
    check_image_ids,
    collection_id,
    ensure_collection,
    image_columns,
    merge_images,
)
from semret.sql.migrations import require_current_schema
from semret.sql.models import HashModel, ImageHash
from semret.sql.pgvector_store import pgvector_state, store_vectors

MODELS: Table = HashModel.__table__  # type: ignore[assignment]
HASHES: Table = ImageHash.__table__  # type: ignore[assignment]
MAX_SQL_BITS = 64


@dataclass(frozen=True)
class StoredModel:
    """A hash model's row."""

    id: int
    name: str
    n_bits: int
    embedding_dim: int
    checkpoint_sha256: str


def register_model(
    engine: Engine, name: str, n_bits: int, embedding_dim: int, params: dict[str, Any], checkpoint: str | Path
) -> StoredModel:
    """Record a trained model (its code length, embedding size, parameters and checkpoint file)
    under ``name``. If the name is known with another checkpoint, its stored codes are deleted:
    they were made by other weights."""
    require_current_schema(engine)
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    values = {
        "n_bits": int(n_bits),
        "embedding_dim": int(embedding_dim),
        "config": json.dumps(params, sort_keys=True),
        "checkpoint_sha256": digest,
    }
    with connect(engine) as conn:
        found = conn.execute(select(MODELS.c.id, MODELS.c.checkpoint_sha256).where(MODELS.c.name == name)).one_or_none()
        if found is None:
            created = insert(MODELS).values(name=name, created_at=datetime.now(UTC), **values).returning(MODELS.c.id)
            model_id = int(conn.execute(created).scalar_one())
        else:
            model_id = int(found.id)
            if found.checkpoint_sha256 != digest:
                conn.execute(delete(HASHES).where(HASHES.c.model_id == model_id))
            conn.execute(update(MODELS).where(MODELS.c.id == model_id).values(**values))
    return StoredModel(model_id, name, values["n_bits"], values["embedding_dim"], digest)  # type: ignore[arg-type]


def model_by_name(conn_engine: Engine, name: str) -> StoredModel:
    """A registered model; an unknown name is an error listing the known ones."""
    with connect(conn_engine) as conn:
        row = conn.execute(select(MODELS).where(MODELS.c.name == name)).one_or_none()
        if row is None:
            names = conn.execute(select(MODELS.c.name).order_by(MODELS.c.name)).scalars().all()
            raise SemretError(f"unknown hash model {name!r} (models: {', '.join(names) or 'none yet'})")
    return StoredModel(row.id, row.name, row.n_bits, row.embedding_dim, row.checkpoint_sha256)


def store_hashes(
    engine: Engine,
    model: StoredModel,
    collection: str,
    image_ids: npt.ArrayLike,
    embeddings: npt.NDArray[np.float32],
    codes: npt.NDArray[np.uint8],
    labels: list[str | None] | None = None,
) -> MergeCounts:
    """Store each image's embedding and packed code under ``model`` (adding the images to the collection)."""
    ids = check_image_ids(image_ids)
    if len(embeddings) != len(ids) or len(codes) != len(ids):
        raise SemretError(f"{len(ids)} image ids but {len(embeddings)} encoded images")
    if embeddings.shape[1] != model.embedding_dim:
        raise SemretError(f"embeddings have {embeddings.shape[1]} dims, model {model.name} has {model.embedding_dim}")
    columns = image_columns(len(ids), label=labels)
    code_ints = codes_to_int64(codes, model.n_bits) if model.n_bits <= MAX_SQL_BITS else None
    with connect(engine) as conn:  # one transaction: the images and their hashes, or nothing
        owner = ensure_collection(conn, collection)
        merge_images(conn, owner, ids, columns)
        keys = dict(conn.execute(select(IMAGES.c.image_id, IMAGES.c.id).where(IMAGES.c.collection_id == owner)).all())
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        rows = (
            (
                model.id,
                keys[int(image)],
                codes[i].tobytes(),
                int(code_ints[i]) if code_ints is not None else None,
                embeddings[i].tobytes(),
            )
            for i, image in enumerate(ids)
        )
        counts = stage_and_merge(conn, HASHES, ("model_id", "image_key"), ("code", "code_int", "embedding"), rows)
        if conn.dialect.name == "postgresql" and pgvector_state(conn).enabled:
            pairs = ((keys[int(image)], int(image)) for image in ids)
            store_vectors(conn, model.id, model.n_bits, owner, pairs, np.asarray(codes), embeddings)
        return counts


@dataclass
class StoredHashes:
    """A collection's embeddings and codes under one model, in image id order."""

    image_ids: npt.NDArray[np.int64]
    labels: list[str | None]
    embeddings: npt.NDArray[np.float32]
    codes: npt.NDArray[np.uint8]


def load_hashes(engine: Engine, model: StoredModel, collection: str) -> StoredHashes:
    """Every stored embedding and code of a collection's images under ``model``."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        rows = conn.execute(
            select(IMAGES.c.image_id, IMAGES.c.label, HASHES.c.code, HASHES.c.embedding)
            .join(HASHES, HASHES.c.image_key == IMAGES.c.id)
            .where(IMAGES.c.collection_id == owner, HASHES.c.model_id == model.id)
            .order_by(IMAGES.c.image_id)
        ).all()
    if not rows:
        raise SemretError(f"collection {collection!r} has no codes of model {model.name!r}: run `semret hash encode`")
    code_bytes = (model.n_bits + 7) // 8
    return StoredHashes(
        np.array([r[0] for r in rows], dtype=np.int64),
        [r[1] for r in rows],
        np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), model.embedding_dim),
        np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8).reshape(len(rows), code_bytes),
    )


class SqlHammingSearcher(SearcherBase):
    """Hamming top-k of a stored collection's codes under one model, inside PostgreSQL: one
    statement per query (``bit_count`` of the XOR with the BIGINT codes, ORDER BY distance, image
    id, LIMIT k), all queries of a batch on one connection. Scores are minus the distances."""

    score_name = "-hamming"
    backend = "postgresql"

    def __init__(self, engine: Engine, model: StoredModel, collection: str) -> None:
        if engine.dialect.name != "postgresql" or model.n_bits > MAX_SQL_BITS:
            raise SemretError(f"Hamming search in SQL needs PostgreSQL and codes of at most {MAX_SQL_BITS} bits")
        self.engine, self.model, self.collection = engine, model, collection
        self.last_candidates = np.zeros(0, dtype=np.int64)
        with connect(engine) as conn:
            self._collection_id = collection_id(conn, collection)
            self._ntotal = int(
                conn.execute(
                    select(func.count())
                    .select_from(HASHES)
                    .join(IMAGES, HASHES.c.image_key == IMAGES.c.id)
                    .where(IMAGES.c.collection_id == self._collection_id, HASHES.c.model_id == model.id)
                ).scalar_one()
            )

    @property
    def ntotal(self) -> int:
        return self._ntotal

    def empty_error(self) -> SemretError:
        return SemretError(
            f"collection {self.collection!r} has no codes of model {self.model.name!r}: run `semret hash encode`"
        )

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
        return hamming_distances(scores)

    def _search(
        self, queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        codes = check_packed(queries, self.model.n_bits, "query codes")
        query_ints = codes_to_int64(codes, self.model.n_bits)
        code = bindparam("code", type_=BigInteger)
        distance = func.bit_count(cast(HASHES.c.code_int.op("#")(code), BIT(64))).label("d")
        statement = (
            select(IMAGES.c.image_id, distance)
            .join(HASHES, HASHES.c.image_key == IMAGES.c.id)
            .where(IMAGES.c.collection_id == self._collection_id, HASHES.c.model_id == self.model.id)
            .order_by(distance, IMAGES.c.image_id)
            .limit(k)
        )
        scores = np.full((len(codes), k), MISSING_SCORE, dtype=np.float32)
        ids = np.full((len(codes), k), NO_ID, dtype=np.int64)
        with connect(self.engine) as conn:
            for row, value in enumerate(query_ints.tolist()):
                found = conn.execute(statement, {"code": value}).all()
                if found:
                    ids[row, : len(found)] = [image_id for image_id, _ in found]
                    scores[row, : len(found)] = [-float(d) for _, d in found]
        self.last_candidates = np.full(len(codes), self._ntotal, dtype=np.int64)
        return scores, ids


def hamming_searcher(
    engine: Engine, model: StoredModel, collection: str, scan: str = "exact", connections: int = 1
) -> SearcherBase:
    """The Hamming searcher of a stored collection: in PostgreSQL with pgvector where it has it
    (`PgvectorHashSearcher` in mode "hamming", ``scan`` "exact" by default: the same results as in
    memory; "approximate": its HNSW index; ``connections``: a batch split over that many), else
    with bit_count where the codes fit
    (`SqlHammingSearcher`), else a `HammingIndex` over the stored codes read once. All follow the
    search contract; ``backend`` says where it runs."""
    from semret.sql.pgvector_search import PgvectorHashSearcher  # it imports StoredModel from here

    if engine.dialect.name == "postgresql":
        with connect(engine) as conn:
            enabled = pgvector_state(conn).enabled
        if enabled:
            return PgvectorHashSearcher(engine, model, collection, mode="hamming", scan=scan, connections=connections)
        if model.n_bits <= MAX_SQL_BITS:
            return SqlHammingSearcher(engine, model, collection)
    stored = load_hashes(engine, model, collection)
    index = HammingIndex(model.n_bits)
    index.add(stored.image_ids, stored.codes)
    return index


def hash_searcher(
    engine: Engine,
    model: StoredModel,
    collection: str,
    shortlist: int | None = None,
    scan: str = "approximate",
    connections: int = 1,
) -> SearcherBase:
    """The Hamming shortlist + cosine re-rank searcher of a stored collection (queries are
    `HashQueries`): inside PostgreSQL with pgvector where it has it (`PgvectorHashSearcher`,
    ``scan`` "approximate" by default: its HNSW index; "exact": the in-memory results;
    ``connections``: a batch split over that many), else a
    `SemanticHashIndex` in mode "rerank" over the stored hashes read once."""
    from semret.hashing.retrieval import SemanticHashIndex
    from semret.sql.pgvector_search import PgvectorHashSearcher

    if engine.dialect.name == "postgresql":
        with connect(engine) as conn:
            enabled = pgvector_state(conn).enabled
        if enabled:
            return PgvectorHashSearcher(
                engine, model, collection, mode="rerank", scan=scan, shortlist=shortlist, connections=connections
            )
    stored = load_hashes(engine, model, collection)
    index = SemanticHashIndex(model.n_bits, model.embedding_dim, "rerank", shortlist)
    index.add(stored.image_ids, stored.embeddings, stored.codes)
    return index
