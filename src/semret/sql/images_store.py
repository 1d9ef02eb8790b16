"""Collections, their images, and each image's predicted words, in the store.

Writes are bulk (staged, then merged), transactional and idempotent: storing the same images or
words again changes nothing, and storing new words for an image replaces its old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Table, and_, delete, func, insert, select, update

from semret.errors import SemretError
from semret.iwan.links import RankedWords
from semret.sql.bulk import MergeCounts, bulk_insert, stage_and_merge
from semret.sql.engine import connect
from semret.sql.migrations import require_current_schema
from semret.sql.models import Collection, Image, ImageImagenetWord, ImageWord, Word

if TYPE_CHECKING:
    from semret.vision.datasets import ImageSet

COLLECTIONS: Table = Collection.__table__  # type: ignore[assignment]
IMAGES: Table = Image.__table__  # type: ignore[assignment]
IMAGE_WORDS: Table = ImageWord.__table__  # type: ignore[assignment]
IMAGENET_WORDS: Table = ImageImagenetWord.__table__  # type: ignore[assignment]
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
    engine: Engine,
    collection: str,
    image_ids: npt.ArrayLike,
    labels: Sequence[str | None] | None = None,
    splits: Sequence[str | None] | None = None,
    sources: Sequence[str | None] | None = None,
) -> MergeCounts:
    """Add images (the caller's integer ids, with optional labels, splits and sources) to a
    collection, creating it. Of the images already there, only the columns given are updated: a
    call with labels alone keeps the splits and sources stored before."""
    require_current_schema(engine)
    ids = check_image_ids(image_ids)
    columns = image_columns(len(ids), label=labels, split=splits, source=sources)
    with connect(engine) as conn:
        return merge_images(conn, ensure_collection(conn, collection), ids, columns)


#: The longest value each optional image column holds (the migrations' String lengths).
IMAGE_COLUMN_LENGTHS = {"label": 255, "split": 32, "source": 1024}
_PLURALS = {"label": "labels", "split": "splits", "source": "sources"}


def image_columns(n: int, **given: Sequence[str | None] | None) -> dict[str, list[str | None]]:
    """The optional image columns that were given, checked: one value per image, none too long."""
    columns: dict[str, list[str | None]] = {}
    for name, values in given.items():
        if values is None:
            continue
        listed = list(values)
        if len(listed) != n:
            raise SemretError(f"{n} image ids but {len(listed)} {_PLURALS[name]}")
        limit = IMAGE_COLUMN_LENGTHS[name]
        for position, value in enumerate(listed):
            if value is not None and len(value) > limit:
                raise SemretError(
                    f"the {name} of image {position} is {len(value)} characters long, more than the store's "
                    f"{limit}: {value[:60]}..."
                )
        columns[name] = listed
    return columns


def merge_images(
    conn: Connection, owner: int, ids: npt.NDArray[np.int64], columns: dict[str, list[str | None]]
) -> MergeCounts:
    """Insert the images a collection lacks and update the given columns of those it has."""
    if columns:
        names = tuple(columns)
        rows = ((owner, int(i), *values) for i, *values in zip(ids, *columns.values(), strict=True))
        return stage_and_merge(conn, IMAGES, ("collection_id", "image_id"), names, rows)
    # no column to update: only the missing images are inserted
    stored = set(conn.execute(select(IMAGES.c.image_id).where(IMAGES.c.collection_id == owner)).scalars())
    new = [(owner, int(i)) for i in ids if int(i) not in stored]
    bulk_insert(conn, IMAGES, ("collection_id", "image_id"), new)
    return MergeCounts(len(new), 0, 0)


def import_image_set(engine: Engine, collection: str, images: ImageSet) -> MergeCounts:
    """Store every image of a loaded dataset split (id, label name, split, source) in a collection,
    created if needed, and record the collection's dataset, in one transaction.

    Importing the same images again changes nothing; importing another split of the same dataset
    adds its images. A collection that holds another dataset is an error (ids would mix).
    """
    require_current_schema(engine)
    ids = check_image_ids(images.image_ids)
    columns = image_columns(len(ids), label=images.label_names(), split=images.image_splits, source=images.sources)
    with connect(engine) as conn:
        owner = ensure_collection(conn, collection)
        stored = conn.execute(select(COLLECTIONS.c.dataset).where(COLLECTIONS.c.id == owner)).scalar()
        if stored is not None and stored != images.dataset:
            raise SemretError(
                f"collection {collection!r} holds images of dataset {stored!r}, not {images.dataset!r}: "
                "import into another collection (--name)"
            )
        if stored is None:
            conn.execute(update(COLLECTIONS).where(COLLECTIONS.c.id == owner).values(dataset=images.dataset))
        return merge_images(conn, owner, ids, columns)


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
        rows = [
            (owner, keys[image], rank, word_ids[word], strength, image)
            for image, rank, word, strength in ranked_rows(ranked, "a word", "strength")
        ]
        emptied = [keys[int(image)] for image, words in zip(ranked.image_ids, ranked.words, strict=True) if not words]
        for start in range(0, len(emptied), 10_000):  # images left without words lose their old ones
            some = emptied[start : start + 10_000]
            conn.execute(
                delete(IMAGE_WORDS).where(IMAGE_WORDS.c.collection_id == owner, IMAGE_WORDS.c.image_key.in_(some))
            )
        return stage_and_merge(
            conn,
            IMAGE_WORDS,
            # the word is part of the key: an image whose words change rank loses its old rows
            # first, so that no statement sees one word twice for an image (a unique constraint);
            # the collection too, so that every statement of the merge names the collection (on a
            # store distributed by collection, one shard: docs/scaling.md)
            ("collection_id", "image_key", "rank", "word_id"),
            ("strength", "image_id"),  # the image id, copied for the ranking index (revision 0006)
            rows,
            owned=lambda staging: and_(
                IMAGE_WORDS.c.collection_id == owner, IMAGE_WORDS.c.image_key.in_(select(staging.c.image_key))
            ),
        )


def ranked_rows(ranked: RankedWords, kind: str, value: str) -> list[tuple[int, int, str, float]]:
    """Each image's words as rows (image id, rank from 1, word, strength), checked: a word given
    twice for an image, or a ``value`` (strength, probability) outside (0, 1], is an error that
    names the image; ``kind`` names the words in the messages ("a word", "an ImageNet word")."""
    rows = []
    for image, words, strengths in zip(ranked.image_ids, ranked.words, ranked.strengths, strict=True):
        if len(set(words)) != len(words):
            raise SemretError(f"image {int(image)} has {kind} more than once: {words}")
        for rank, (word, strength) in enumerate(zip(words, strengths, strict=True), start=1):
            if not 0 < strength <= 1:
                raise SemretError(f"image {int(image)}: {value} of {word} must be in (0, 1], got {strength}")
            rows.append((int(image), rank, word, strength))
    return rows


#: The longest ImageNet word the store holds (the migration's String length).
IMAGENET_WORD_LENGTH = 128


def store_imagenet_words(engine: Engine, collection: str, ranked: RankedWords) -> MergeCounts:
    """Store each image's top ImageNet words (formatted class names, best first, with their
    probabilities), replacing what the image had; the images must exist. These are the published
    IWAN's words (`semret.iwan.published.predicted_words`), kept whole (up to 10) so that graphs for
    any top-IWK are built from them. Nothing is written when one is invalid."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        keys = dict(conn.execute(select(IMAGES.c.image_id, IMAGES.c.id).where(IMAGES.c.collection_id == owner)).all())
        missing = [int(i) for i in ranked.image_ids if int(i) not in keys]
        if missing:
            raise SemretError(f"{len(missing)} images are not in collection {collection!r}, e.g. {missing[:5]}")
        rows = []
        for image, rank, word, probability in ranked_rows(ranked, "an ImageNet word", "probability"):
            if not word.strip() or len(word) > IMAGENET_WORD_LENGTH:
                raise SemretError(f"image {image}: ImageNet word {word[:60]!r} is empty or too long")
            rows.append((owner, keys[image], rank, word, probability, image))
        emptied = [keys[int(image)] for image, words in zip(ranked.image_ids, ranked.words, strict=True) if not words]
        for start in range(0, len(emptied), 10_000):
            some = emptied[start : start + 10_000]
            conn.execute(
                delete(IMAGENET_WORDS).where(
                    IMAGENET_WORDS.c.collection_id == owner, IMAGENET_WORDS.c.image_key.in_(some)
                )
            )
        return stage_and_merge(  # keyed and scoped by collection, as store_image_words
            conn,
            IMAGENET_WORDS,
            ("collection_id", "image_key", "rank"),
            ("name", "probability", "image_id"),
            rows,
            owned=lambda staging: and_(
                IMAGENET_WORDS.c.collection_id == owner, IMAGENET_WORDS.c.image_key.in_(select(staging.c.image_key))
            ),
        )


@dataclass(frozen=True)
class CollectionSummary:
    """A collection and how much of it is stored: images, images with words, the dataset it was
    imported from and its images per split (images without a split are not counted there)."""

    name: str
    images: int
    images_with_words: int
    dataset: str | None = None
    splits: dict[str, int] = field(default_factory=dict)


def list_collections(engine: Engine) -> list[CollectionSummary]:
    """Every collection with its number of images and of images that have words, its dataset and
    its images per split."""
    require_current_schema(engine)
    with connect(engine) as conn:
        with_words = (  # grouped by the words' own collection: no join (docs/scaling.md)
            select(IMAGE_WORDS.c.collection_id, func.count(IMAGE_WORDS.c.image_key.distinct()).label("n"))
            .group_by(IMAGE_WORDS.c.collection_id)
            .subquery()
        )
        rows = conn.execute(
            select(
                COLLECTIONS.c.id,
                COLLECTIONS.c.name,
                COLLECTIONS.c.dataset,
                func.count(IMAGES.c.id),
                func.coalesce(with_words.c.n, 0),
            )
            .select_from(COLLECTIONS)
            .outerjoin(IMAGES, IMAGES.c.collection_id == COLLECTIONS.c.id)
            .outerjoin(with_words, with_words.c.collection_id == COLLECTIONS.c.id)
            .group_by(COLLECTIONS.c.id, COLLECTIONS.c.name, COLLECTIONS.c.dataset, with_words.c.n)
            .order_by(COLLECTIONS.c.name)
        ).all()
        splits: dict[int, dict[str, int]] = {}
        per_split = conn.execute(
            select(IMAGES.c.collection_id, IMAGES.c.split, func.count())
            .where(IMAGES.c.split.is_not(None))
            .group_by(IMAGES.c.collection_id, IMAGES.c.split)
            .order_by(IMAGES.c.collection_id, IMAGES.c.split)
        ).all()
        for owner, split, count in per_split:
            splits.setdefault(owner, {})[split] = int(count)
    return [
        CollectionSummary(name, int(n), int(w), dataset, splits.get(owner, {})) for owner, name, dataset, n, w in rows
    ]


def has_collection(engine: Engine, name: str) -> bool:
    """Whether a collection called ``name`` exists."""
    require_current_schema(engine)
    with connect(engine) as conn:
        return conn.execute(select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == name)).scalar() is not None


@dataclass(frozen=True)
class CollectionImages:
    """A collection's images in id order (row i of each list belongs to ``image_ids[i]``) and the
    dataset it was imported from (None when its images were stored some other way)."""

    name: str
    dataset: str | None
    image_ids: npt.NDArray[np.int64]
    labels: list[str | None]
    splits: list[str | None]
    sources: list[str | None]


def collection_images(engine: Engine, name: str) -> CollectionImages:
    """Every image of an existing collection: id, label, split and source."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, name)
        dataset = conn.execute(select(COLLECTIONS.c.dataset).where(COLLECTIONS.c.id == owner)).scalar()
        rows = conn.execute(
            select(IMAGES.c.image_id, IMAGES.c.label, IMAGES.c.split, IMAGES.c.source)
            .where(IMAGES.c.collection_id == owner)
            .order_by(IMAGES.c.image_id)
        ).all()
    return CollectionImages(
        name,
        dataset,
        np.array([row[0] for row in rows], dtype=np.int64),
        [row[1] for row in rows],
        [row[2] for row in rows],
        [row[3] for row in rows],
    )
