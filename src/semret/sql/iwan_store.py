"""IWAN graphs in the store: build one for a collection, load it as an `IwanIndex`, and rank a
collection's images inside the database.

`build_iwan_graph` snapshots the word -> word edges (top-WWK of the loaded norms) with the
graph's settings; the image -> word links are the collection's stored image words of rank
<= top-IWK. `SqlImageRanker` ranks images with one SQL query (word distances passed in through a
staging table; GROUP BY image, ORDER BY distance, image id, LIMIT k), so collections too large for
memory can be ranked in the database, with the same results as in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Column, Engine, Float, Integer, Select, Table, cast, delete, func, insert, literal, select

from semret.errors import SemretError
from semret.iwan.graph import IwanSettings, WordEdges, select_word_edges
from semret.iwan.index import NO_IMAGE, IwanIndex, WeightedWords
from semret.sql.bulk import analyse, bulk_insert, temporary_table
from semret.sql.engine import connect
from semret.sql.images_store import COLLECTIONS, IMAGE_WORDS, IMAGES, collection_id
from semret.sql.migrations import require_current_schema
from semret.sql.models import IwanGraph, IwanWordEdge, NormPair, Word

GRAPHS: Table = IwanGraph.__table__  # type: ignore[assignment]
#: The staging table of one query's word distances (temporary: each connection has its own).
WORD_DISTANCES = temporary_table(
    "semret_word_distances",
    [Column("word_id", Integer, nullable=False), Column("distance", Float, nullable=False)],
    ("word_id",),
)
EDGES: Table = IwanWordEdge.__table__  # type: ignore[assignment]
PAIRS: Table = NormPair.__table__  # type: ignore[assignment]
WORDS: Table = Word.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class IwanBuildReport:
    """What a build made."""

    collection: str
    settings: IwanSettings
    words: int
    word_edges: int
    images: int
    image_links: int


def build_iwan_graph(engine: Engine, collection: str, settings: IwanSettings) -> IwanBuildReport:
    """Build (or rebuild) the IWAN graph of ``collection`` from the loaded norms, in one transaction."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        images, links = conn.execute(
            select(func.count(IMAGE_WORDS.c.image_key.distinct()), func.count())
            .select_from(IMAGE_WORDS)
            .join(IMAGES, IMAGES.c.id == IMAGE_WORDS.c.image_key)
            .where(IMAGES.c.collection_id == owner, IMAGE_WORDS.c.rank <= settings.top_iwk)
        ).one()
        if not images:
            raise SemretError(f"collection {collection!r} has no image words yet: link its images to words first")
        word_ids = np.array(conn.execute(select(WORDS.c.id).order_by(WORDS.c.id)).scalars().all(), dtype=np.int64)
        words = conn.execute(select(WORDS.c.word).order_by(WORDS.c.id)).scalars().all()
        pairs = conn.execute(select(PAIRS.c.cue_id, PAIRS.c.target_id, PAIRS.c.fsg, PAIRS.c.bsg, PAIRS.c.normed)).all()
        if not pairs:
            raise SemretError("no norms are loaded: run `semret norms load PATH` first")
        cue, target, fsg, bsg, normed = (np.array(column, dtype=object) for column in zip(*pairs, strict=True))
        edges = select_word_edges(
            words,
            np.searchsorted(word_ids, cue.astype(np.int64)),
            np.searchsorted(word_ids, target.astype(np.int64)),
            fsg.astype(np.float64),
            np.array([np.nan if b is None else b for b in bsg], dtype=np.float64),
            normed.astype(bool),
            settings,
        )
        conn.execute(delete(GRAPHS).where(GRAPHS.c.collection_id == owner))
        graph_id = conn.execute(
            insert(GRAPHS)
            .values(
                collection_id=owner,
                top_iwk=settings.top_iwk,
                top_wwk=settings.top_wwk,
                normed_only=settings.normed_only,
                backward=settings.backward,
                built_at=datetime.now(UTC),
            )
            .returning(GRAPHS.c.id)
        ).scalar_one()
        rows = zip(
            [graph_id] * len(edges),
            word_ids[edges.source].tolist(),
            word_ids[edges.target].tolist(),
            edges.strength.tolist(),
            strict=True,
        )
        bulk_insert(conn, EDGES, ("graph_id", "source_word_id", "target_word_id", "strength"), rows)
    return IwanBuildReport(collection, settings, len(words), len(edges), int(images), int(links))


@dataclass
class StoredIwan:
    """A collection's IWAN graph loaded from the store: the index and what it needs to map ids."""

    collection: str
    collection_id: int
    index: IwanIndex
    word_ids: npt.NDArray[np.int64]  # store word id of each word index


def load_iwan(engine: Engine, collection: str, with_images: bool = True) -> StoredIwan:
    """Load a built IWAN graph; ``with_images=False`` leaves the image links in the database
    (for `SqlImageRanker` on collections too large for memory)."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        graph = conn.execute(select(GRAPHS).where(GRAPHS.c.collection_id == owner)).one_or_none()
        if graph is None:
            raise SemretError(
                f"collection {collection!r} has no IWAN graph: run `semret iwan build --collection {collection}`"
            )
        settings = IwanSettings(graph.top_iwk, graph.top_wwk, graph.normed_only, graph.backward)
        word_rows = conn.execute(select(WORDS.c.id, WORDS.c.word).order_by(WORDS.c.id)).all()
        word_ids = np.array([r[0] for r in word_rows], dtype=np.int64)
        edge_rows = conn.execute(
            select(EDGES.c.source_word_id, EDGES.c.target_word_id, EDGES.c.strength).where(EDGES.c.graph_id == graph.id)
        ).all()
        edge_array = np.array(edge_rows, dtype=np.float64).reshape(-1, 3)
        edges = WordEdges(
            np.searchsorted(word_ids, edge_array[:, 0].astype(np.int64)),
            np.searchsorted(word_ids, edge_array[:, 1].astype(np.int64)),
            edge_array[:, 2],
        )
        link_rows: Sequence[Any] = []
        labels: dict[int, str | None] = {}
        if with_images:
            link_rows = conn.execute(
                select(IMAGES.c.image_id, IMAGE_WORDS.c.word_id, IMAGE_WORDS.c.strength)
                .join(IMAGE_WORDS, IMAGE_WORDS.c.image_key == IMAGES.c.id)
                .where(IMAGES.c.collection_id == owner, IMAGE_WORDS.c.rank <= settings.top_iwk)
            ).all()
            labels = dict(
                conn.execute(select(IMAGES.c.image_id, IMAGES.c.label).where(IMAGES.c.collection_id == owner)).all()
            )
    links = np.array(link_rows, dtype=np.float64).reshape(-1, 3)
    index = IwanIndex(
        [r[1] for r in word_rows],
        edges,
        links[:, 0].astype(np.int64),
        np.searchsorted(word_ids, links[:, 1].astype(np.int64)),
        links[:, 2],
        settings,
        labels,
    )
    return StoredIwan(collection, owner, index, word_ids)


def image_query(engine: Engine, stored: StoredIwan, image_id: int) -> WeightedWords:
    """The query of a stored image: its top-IWK words and strengths, read from the database."""
    with connect(engine) as conn:
        rows = conn.execute(
            select(IMAGE_WORDS.c.word_id, IMAGE_WORDS.c.strength)
            .join(IMAGES, IMAGES.c.id == IMAGE_WORDS.c.image_key)
            .where(
                IMAGES.c.collection_id == stored.collection_id,
                IMAGES.c.image_id == image_id,
                IMAGE_WORDS.c.rank <= stored.index.settings.top_iwk,
            )
            .order_by(IMAGE_WORDS.c.rank)
        ).all()
    if not rows:
        raise SemretError(f"image {image_id} is not in collection {stored.collection!r} or has no words")
    word_ids = np.array([r[0] for r in rows], dtype=np.int64)
    return WeightedWords(np.searchsorted(stored.word_ids, word_ids), np.array([r[1] for r in rows], dtype=np.float64))


class SqlImageRanker:
    """Ranks a collection's images in the database from one query's word distances.

    One SQL statement: the finite word distances are staged (COPY / executemany) in a temporary
    table, joined to the image words of rank <= top-IWK, and each image's distance is
    MIN(word distance + 1 / strength), ordered by distance then image id, LIMIT k. Same arithmetic
    as the fast path, so the same results, on PostgreSQL and SQLite.
    """

    #: A lower bound of every link weight (strengths are at most 1), for the early stop.
    min_link_weight = 1.0

    def __init__(self, engine: Engine, stored: StoredIwan) -> None:
        self.engine = engine
        self.stored = stored

    def __call__(
        self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        reached = np.flatnonzero(np.isfinite(word_distances))
        out_distances = np.full(k, np.inf)
        out_ids = np.full(k, NO_IMAGE, dtype=np.int64)
        with connect(self.engine) as conn:
            WORD_DISTANCES.create(conn)
            try:
                rows = zip(self.stored.word_ids[reached].tolist(), word_distances[reached].tolist(), strict=True)
                bulk_insert(conn, WORD_DISTANCES, ("word_id", "distance"), rows)
                analyse(conn, WORD_DISTANCES)
                found = conn.execute(self._statement(k, exclude)).all()
            finally:
                WORD_DISTANCES.drop(conn)
        for column, (image_id, value) in enumerate(found):
            out_ids[column], out_distances[column] = image_id, value
        return out_distances, out_ids

    def _statement(self, k: int, exclude: int | None) -> Select[Any]:
        """From the reached words to their links (word_id index), each image's minimum, then the
        collection's k nearest; the same statement text every time, so it is compiled once."""
        one = cast(literal(1.0), Float)
        best = (
            select(
                IMAGE_WORDS.c.image_key,
                func.min(WORD_DISTANCES.c.distance + one / IMAGE_WORDS.c.strength).label("distance"),
            )
            .select_from(WORD_DISTANCES)
            .join(IMAGE_WORDS, IMAGE_WORDS.c.word_id == WORD_DISTANCES.c.word_id)
            .where(IMAGE_WORDS.c.rank <= self.stored.index.settings.top_iwk)
            .group_by(IMAGE_WORDS.c.image_key)
            .subquery("best")
        )
        statement = (
            select(IMAGES.c.image_id, best.c.distance)
            .join_from(best, IMAGES, IMAGES.c.id == best.c.image_key)
            .where(IMAGES.c.collection_id == self.stored.collection_id)
            .order_by(best.c.distance, IMAGES.c.image_id)
            .limit(k)
        )
        if exclude is not None:
            statement = statement.where(IMAGES.c.image_id != exclude)
        return statement


def image_links(
    engine: Engine, stored: StoredIwan, image_ids: Sequence[int]
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """The top-IWK links (word indices, strengths) of a few images, read from the database."""
    wanted = [int(i) for i in image_ids if i != NO_IMAGE]
    links: dict[int, tuple[list[int], list[float]]] = {i: ([], []) for i in wanted}
    with connect(engine) as conn:
        rows = conn.execute(
            select(IMAGES.c.image_id, IMAGE_WORDS.c.word_id, IMAGE_WORDS.c.strength)
            .join(IMAGE_WORDS, IMAGE_WORDS.c.image_key == IMAGES.c.id)
            .where(
                IMAGES.c.collection_id == stored.collection_id,
                IMAGES.c.image_id.in_(wanted),
                IMAGE_WORDS.c.rank <= stored.index.settings.top_iwk,
            )
        ).all()
        labels = conn.execute(
            select(IMAGES.c.image_id, IMAGES.c.label).where(
                IMAGES.c.collection_id == stored.collection_id, IMAGES.c.image_id.in_(wanted)
            )
        ).all()
    stored.index.labels.update(dict(labels))
    for image_id, word_id, strength in rows:
        links[image_id][0].append(int(word_id))
        links[image_id][1].append(float(strength))
    return {
        image_id: (np.searchsorted(stored.word_ids, np.array(words, dtype=np.int64)), np.array(strengths))
        for image_id, (words, strengths) in links.items()
    }


def collection_with_graph(engine: Engine, name: str | None) -> str:
    """``name``, or when it is None the one collection that has an IWAN graph."""
    if name is not None:
        return name
    require_current_schema(engine)
    with connect(engine) as conn:
        names = (
            conn.execute(
                select(COLLECTIONS.c.name)
                .join(GRAPHS, GRAPHS.c.collection_id == COLLECTIONS.c.id)
                .order_by(COLLECTIONS.c.name)
            )
            .scalars()
            .all()
        )
    if len(names) == 1:
        return names[0]
    if not names:
        raise SemretError("no collection has an IWAN graph yet: run `semret iwan build --collection NAME`")
    raise SemretError(f"several collections have IWAN graphs ({', '.join(names)}): choose one with --collection")
