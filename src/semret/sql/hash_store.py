"""Semantic hash models and their per-image embeddings and codes in the store.

Writes are bulk, transactional and idempotent (staged merges). Hamming top-k runs inside
PostgreSQL with ``bit_count`` over the codes (for codes of at most 64 bits, kept as BIGINT);
SQLite has no such function, so there the same search runs in memory on the stored codes, with
the same results and tie order (by image id).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, Engine, Table, cast, delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import BIT

from semret.errors import SemretError
from semret.hashing.codes import codes_to_int64
from semret.hashing.hamming import NO_ID, HammingIndex
from semret.sql.bulk import MergeCounts, stage_and_merge
from semret.sql.engine import connect
from semret.sql.images_store import IMAGES, check_image_ids, collection_id, store_images
from semret.sql.migrations import require_current_schema
from semret.sql.models import HashModel, ImageHash

if TYPE_CHECKING:  # torch is slow to import: the hasher is only a type here
    from semret.hashing.hasher import EncodedImages, SemanticHasher

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


def register_model(engine: Engine, name: str, hasher: SemanticHasher, checkpoint: str | Path) -> StoredModel:
    """Record a trained model under ``name``. If the name is known with another checkpoint, its
    stored codes are deleted: they were made by other weights."""
    require_current_schema(engine)
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    values = {
        "n_bits": hasher.config.n_bits,
        "embedding_dim": int(hasher.class_embeddings_.shape[1]),
        "config": json.dumps(asdict(hasher.config), sort_keys=True),
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
    encoded: EncodedImages,
    labels: list[str | None] | None = None,
) -> MergeCounts:
    """Store each image's embedding and code under ``model`` (adding the images to the collection)."""
    ids = check_image_ids(image_ids)
    if len(encoded.embeddings) != len(ids) or len(encoded.codes) != len(ids):
        raise SemretError(f"{len(ids)} image ids but {len(encoded.embeddings)} encoded images")
    if encoded.embeddings.shape[1] != model.embedding_dim:
        raise SemretError(
            f"embeddings have {encoded.embeddings.shape[1]} dims, model {model.name} has {model.embedding_dim}"
        )
    store_images(engine, collection, ids, labels)
    code_ints = codes_to_int64(encoded.codes, model.n_bits) if model.n_bits <= MAX_SQL_BITS else None
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        keys = dict(conn.execute(select(IMAGES.c.image_id, IMAGES.c.id).where(IMAGES.c.collection_id == owner)).all())
        embeddings = np.ascontiguousarray(encoded.embeddings, dtype=np.float32)
        rows = (
            (
                model.id,
                keys[int(image)],
                encoded.codes[i].tobytes(),
                int(code_ints[i]) if code_ints is not None else None,
                embeddings[i].tobytes(),
            )
            for i, image in enumerate(ids)
        )
        return stage_and_merge(conn, HASHES, ("model_id", "image_key"), ("code", "code_int", "embedding"), rows)


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


def hamming_search_in_db(
    engine: Engine, model: StoredModel, collection: str, query_code: npt.NDArray[np.uint8], k: int, exclude: int | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The k images of ``collection`` nearest in Hamming distance to ``query_code``: (distances,
    image ids), ties by id. Inside PostgreSQL with bit_count; on SQLite (or codes over 64 bits)
    the same search in memory."""
    if k < 1:
        raise SemretError(f"k must be at least 1, got {k}")
    if engine.dialect.name != "postgresql" or model.n_bits > MAX_SQL_BITS:
        stored = load_hashes(engine, model, collection)
        keep = stored.image_ids != exclude if exclude is not None else np.ones(len(stored.image_ids), dtype=bool)
        index = HammingIndex(model.n_bits)
        index.add(stored.image_ids[keep], stored.codes[keep])
        near, nearest = index.search(query_code.reshape(1, -1), k)
        return np.asarray(near[0], dtype=np.int64), np.asarray(nearest[0], dtype=np.int64)
    query_int = int(codes_to_int64(query_code.reshape(1, -1), model.n_bits)[0])
    distance = func.bit_count(cast(HASHES.c.code_int.op("#")(literal(query_int, BigInteger)), BIT(64))).label("d")
    statement = (
        select(IMAGES.c.image_id, distance)
        .join(HASHES, HASHES.c.image_key == IMAGES.c.id)
        .where(IMAGES.c.collection_id == collection_id_of(engine, collection), HASHES.c.model_id == model.id)
        .order_by(distance, IMAGES.c.image_id)
        .limit(k)
    )
    if exclude is not None:
        statement = statement.where(IMAGES.c.image_id != exclude)
    with connect(engine) as conn:
        found = conn.execute(statement).all()
    distances = np.full(k, int(np.iinfo(np.int32).max), dtype=np.int64)  # padding as in HammingIndex
    ids = np.full(k, NO_ID, dtype=np.int64)
    for i, (image_id, d) in enumerate(found):
        ids[i], distances[i] = image_id, d
    return distances, ids


def collection_id_of(engine: Engine, collection: str) -> int:
    """The id of a collection (an error lists the known ones)."""
    with connect(engine) as conn:
        return collection_id(conn, collection)
