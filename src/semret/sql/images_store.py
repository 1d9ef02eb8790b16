"""Collections, their images, and each image's predicted words, in the store.

Writes are bulk (staged, then merged), transactional and idempotent: storing the same images or
words again changes nothing, and storing new words for an image replaces its old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Table, delete, func, insert, select

from semret.errors import SemretError
from semret.sql.bulk import MergeCounts, stage_and_merge
from semret.sql.engine import connect
from semret.sql.migrations import require_current_schema
from semret.sql.models import Collection, Image, ImageWord, Word

COLLECTIONS: Table = Collection.__table__  # type: ignore[assignment]
IMAGES: Table = Image.__table__  # type: ignore[assignment]
IMAGE_WORDS: Table = ImageWord.__table__  # type: ignore[assignment]
WORDS: Table = Word.__table__  # type: ignore[assignment]


def collection_id(conn: Connection, name: str) -> int:
    """The id of an existing collection; an unknown name is an error listing the known ones."""
    found = conn.execute(select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == name)).scalar()
    if found is None:
        names = conn.execute(select(COLLECTIONS.c.name).order_by(COLLECTIONS.c.name)).scalars().all()
        known = ", ".join(names) if names else "none yet"
        raise SemretError(f"unknown collection {name!r} (collections: {known})")
    return int(found)


def ensure_collection(conn: Connection, name: str) -> int:
    """The id of the collection called ``name``, created if it does not exist."""
    if not name.strip():
        raise SemretError("a collection needs a name")
    found = conn.execute(select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == name)).scalar()
    if found is not None:
        return int(found)
    created = insert(COLLECTIONS).values(name=name, created_at=datetime.now(UTC)).returning(COLLECTIONS.c.id)
    return int(conn.execute(created).scalar_one())


def check_image_ids(image_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Image ids as a 1-d int64 array; anything else, or a repeated id, is an error."""
    ids = np.asarray(image_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise SemretError("image ids must be a 1-d array of integers")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise SemretError(f"image id {int(unique[counts > 1][0])} is given more than once")
    return ids.astype(np.int64)


def store_images(
    engine: Engine, collection: str, image_ids: npt.ArrayLike, labels: Sequence[str | None] | None = None
) -> MergeCounts:
    """Add images (the caller's integer ids, with optional labels) to a collection, creating it."""
    require_current_schema(engine)
    ids = check_image_ids(image_ids)
    label_list = list(labels) if labels is not None else [None] * len(ids)
    if len(label_list) != len(ids):
        raise SemretError(f"{len(ids)} image ids but {len(label_list)} labels")
    with connect(engine) as conn:
        owner = ensure_collection(conn, collection)
        rows = ((owner, int(i), label) for i, label in zip(ids, label_list, strict=True))
        return stage_and_merge(conn, IMAGES, ("collection_id", "image_id"), ("label",), rows)


@dataclass(frozen=True)
class RankedWords:
    """Each image's words, best first: ``words[i]`` and ``strengths[i]`` belong to ``image_ids[i]``."""

    image_ids: npt.NDArray[np.int64]
    words: list[list[str]]
    strengths: list[list[float]]


def store_image_words(engine: Engine, collection: str, ranked: RankedWords) -> MergeCounts:
    """Store each image's ranked words (replacing what the image had); the images must exist.

    Unknown words, strengths outside (0, 1] and repeated words are errors; nothing is written then.
    """
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        keys = dict(conn.execute(select(IMAGES.c.image_id, IMAGES.c.id).where(IMAGES.c.collection_id == owner)).all())
        missing = [int(i) for i in ranked.image_ids if int(i) not in keys]
        if missing:
            raise SemretError(f"{len(missing)} images are not in collection {collection!r}, e.g. {missing[:5]}")
        needed = {w for words in ranked.words for w in words}
        word_ids = dict(conn.execute(select(WORDS.c.word, WORDS.c.id)).all())
        unknown = sorted(needed - word_ids.keys())
        if unknown:
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise SemretError(f"words not in the loaded norms: {', '.join(unknown[:10])}{more}")
        rows = []
        for image, words, strengths in zip(ranked.image_ids, ranked.words, ranked.strengths, strict=True):
            if len(set(words)) != len(words):
                raise SemretError(f"image {int(image)} has a word more than once: {words}")
            for rank, (word, strength) in enumerate(zip(words, strengths, strict=True), start=1):
                if not 0 < strength <= 1:
                    raise SemretError(f"image {int(image)}: strength of {word} must be in (0, 1], got {strength}")
                rows.append((keys[int(image)], rank, word_ids[word], strength))
        emptied = [keys[int(image)] for image, words in zip(ranked.image_ids, ranked.words, strict=True) if not words]
        for start in range(0, len(emptied), 10_000):  # images left without words lose their old ones
            conn.execute(delete(IMAGE_WORDS).where(IMAGE_WORDS.c.image_key.in_(emptied[start : start + 10_000])))
        return stage_and_merge(
            conn,
            IMAGE_WORDS,
            ("image_key", "rank"),
            ("word_id", "strength"),
            rows,
            owned=lambda staging: IMAGE_WORDS.c.image_key.in_(select(staging.c.image_key)),
        )


@dataclass(frozen=True)
class CollectionSummary:
    """A collection and how much of it is stored."""

    name: str
    images: int
    images_with_words: int


def list_collections(engine: Engine) -> list[CollectionSummary]:
    """Every collection with its number of images and of images that have words."""
    require_current_schema(engine)
    with connect(engine) as conn:
        with_words = (
            select(IMAGES.c.collection_id, func.count(IMAGE_WORDS.c.image_key.distinct()).label("n"))
            .join(IMAGE_WORDS, IMAGE_WORDS.c.image_key == IMAGES.c.id)
            .group_by(IMAGES.c.collection_id)
            .subquery()
        )
        rows = conn.execute(
            select(COLLECTIONS.c.name, func.count(IMAGES.c.id), func.coalesce(with_words.c.n, 0))
            .select_from(COLLECTIONS)
            .outerjoin(IMAGES, IMAGES.c.collection_id == COLLECTIONS.c.id)
            .outerjoin(with_words, with_words.c.collection_id == COLLECTIONS.c.id)
            .group_by(COLLECTIONS.c.name, with_words.c.n)
            .order_by(COLLECTIONS.c.name)
        ).all()
    return [CollectionSummary(name, int(n), int(w)) for name, n, w in rows]
