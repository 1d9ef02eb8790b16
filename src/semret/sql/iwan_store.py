"""IWAN graphs in the store: build one for a collection, load it as an `IwanIndex`, and rank a
collection's images inside the database.

`build_iwan_graph` snapshots the word -> word edges (top-WWK of the loaded norms) with the
graph's settings; the image -> word links are the collection's stored image words of rank
<= top-IWK. `build_published_iwan_graph` builds the published graph (`semret.iwan.published`) from
the images' stored ImageNet words, labels and the norms, and snapshots its nodes, edges and links
(scheme "published"); both load as an `IwanIndex` and rank the same way. `SqlImageRanker` ranks
images with one SQL query (the word distances passed in as parameters of the query; each reached
word's first 2k links by the ranking index, then each image's minimum, ORDER BY distance, image
id, LIMIT k), so collections too large for memory can be ranked in the database at a cost of words
reached x k, with the same results as in memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    TextClause,
    and_,
    delete,
    func,
    insert,
    select,
    text,
)

from semret.errors import SemretError
from semret.iwan.graph import IwanSettings, WordEdges, select_word_edges
from semret.iwan.index import NO_IMAGE, IwanIndex, WeightedWords
from semret.iwan.links import RankedWords
from semret.iwan.published import (
    ForwardNorms,
    PublishedIwanSettings,
    build_published_graph,
    imagenet_word,
    label_lookups,
    lookup_word,
    published_query,
)
from semret.iwan.vocabulary import Vocabulary
from semret.sql.bulk import bulk_insert
from semret.sql.engine import connect
from semret.sql.images_store import COLLECTIONS, IMAGE_WORDS, IMAGENET_WORDS, IMAGES, collection_id
from semret.sql.migrations import require_current_schema
from semret.sql.models import IwanGraph, IwanGraphLink, IwanGraphNode, IwanNodeEdge, IwanWordEdge, NormPair, Word

GRAPHS: Table = IwanGraph.__table__  # type: ignore[assignment]
EDGES: Table = IwanWordEdge.__table__  # type: ignore[assignment]
NODES: Table = IwanGraphNode.__table__  # type: ignore[assignment]
NODE_EDGES: Table = IwanNodeEdge.__table__  # type: ignore[assignment]
LINKS: Table = IwanGraphLink.__table__  # type: ignore[assignment]
PUBLISHED = "published"
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
            .join(IMAGES, of_image(IMAGE_WORDS))
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


@dataclass(frozen=True)
class PublishedBuildReport:
    """What a published build made: nodes, undirected word edges, images and their links, and the
    label nodes whose lookup word fell back to semret's vocabulary (node -> word)."""

    collection: str
    settings: PublishedIwanSettings
    words: int
    word_edges: int
    images: int
    image_links: int
    fallback_lookups: dict[str, str]


def build_published_iwan_graph(
    engine: Engine,
    collection: str,
    settings: PublishedIwanSettings,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> PublishedBuildReport:
    """Build (or rebuild) the published IWAN graph of ``collection``, in one transaction: its
    images with ImageNet words are the database, linked to their labels and top-IWK words; nodes,
    edges and links are stored as a snapshot. ``aliases`` serve the label fallback (a label whose
    last word is not in the norms looks up its vocabulary word)."""
    require_current_schema(engine)
    with connect(engine) as conn:
        owner = collection_id(conn, collection)
        rows = conn.execute(
            select(IMAGES.c.id, IMAGES.c.image_id, IMAGES.c.label, IMAGENET_WORDS.c.name, IMAGENET_WORDS.c.probability)
            .join(IMAGENET_WORDS, of_image(IMAGENET_WORDS))
            .where(IMAGES.c.collection_id == owner)
            .order_by(IMAGES.c.image_id, IMAGENET_WORDS.c.rank)
        ).all()
        if not rows:
            raise SemretError(
                f"collection {collection!r} has no ImageNet words: link them first with "
                f"`semret iwan link --imagenet --collection {collection}`"
            )
        keys: dict[int, int] = {}
        labels: dict[int, str | None] = {}
        words: dict[int, tuple[list[str], list[float]]] = {}
        for key, image, label, name, probability in rows:
            keys[image], labels[image] = key, label
            names, strengths = words.setdefault(image, ([], []))
            names.append(name)
            strengths.append(float(probability))
        cue_word, target_word = WORDS.alias("cue_word"), WORDS.alias("target_word")
        pairs = conn.execute(
            select(cue_word.c.word, target_word.c.word, PAIRS.c.fsg)
            .join_from(PAIRS, cue_word, cue_word.c.id == PAIRS.c.cue_id)
            .join(target_word, target_word.c.id == PAIRS.c.target_id)
        ).all()
        if not pairs:
            raise SemretError("no norms are loaded: run `semret norms load PATH` first")
        norms = ForwardNorms([p[0] for p in pairs], [p[1] for p in pairs], np.array([p[2] for p in pairs], dtype=float))
        ids = np.array(sorted(words), dtype=np.int64)
        image_labels = [labels[int(i)] for i in ids]
        lookups = _fallback_lookups(conn, image_labels, aliases)
        predicted = RankedWords(ids, [words[int(i)][0] for i in ids], [words[int(i)][1] for i in ids])
        graph = build_published_graph(ids, image_labels, predicted, norms, settings, lookups)
        too_long = [node for node in graph.nodes if len(node) > 128]
        if too_long:
            raise SemretError(f"the word {too_long[0][:60]!r}... is longer than the store's 128 characters")
        conn.execute(delete(GRAPHS).where(GRAPHS.c.collection_id == owner))
        graph_id = conn.execute(
            insert(GRAPHS)
            .values(
                collection_id=owner,
                top_iwk=settings.top_iwk,
                top_wwk=settings.top_wwk,
                normed_only=False,
                backward=False,
                built_at=datetime.now(UTC),
                scheme=PUBLISHED,
                label_strength=float(settings.label_strength),
            )
            .returning(GRAPHS.c.id)
        ).scalar_one()
        nodes = (
            (graph_id, i, name, look) for i, (name, look) in enumerate(zip(graph.nodes, graph.lookups, strict=True))
        )
        bulk_insert(conn, NODES, ("graph_id", "node", "name", "lookup"), nodes)
        edge_rows = zip(
            [graph_id] * len(graph.edges),
            graph.edges.source.tolist(),
            graph.edges.target.tolist(),
            graph.edges.strength.tolist(),
            strict=True,
        )
        bulk_insert(conn, NODE_EDGES, ("graph_id", "source_node", "target_node", "strength"), edge_rows)
        link_images = graph.link_images.tolist()
        link_rows = zip(
            [graph_id] * len(link_images),
            [keys[i] for i in link_images],
            graph.link_nodes.tolist(),
            graph.link_strengths.tolist(),
            [owner] * len(link_images),
            link_images,
            strict=True,
        )
        columns = ("graph_id", "image_key", "node", "strength", "collection_id", "image_id")
        bulk_insert(conn, LINKS, columns, link_rows)
    return PublishedBuildReport(
        collection,
        settings,
        len(graph.nodes),
        graph.undirected_edges,
        len(np.unique(graph.link_images)),
        len(graph.link_images),
        {node: look for node, look in zip(graph.nodes, graph.lookups, strict=True) if look != lookup_word(node)},
    )


def _fallback_lookups(
    conn: Connection, labels: Sequence[str | None], aliases: Mapping[str, Sequence[str]] | None
) -> dict[str, str]:
    """Lookup words for the labels whose last word is not in the norms: semret's vocabulary word."""
    known = frozenset(conn.execute(select(WORDS.c.word)).scalars())
    distinct = sorted({label for label in labels if label is not None})
    unknown = [label for label in distinct if lookup_word(imagenet_word(label)) not in known]
    if not unknown:
        return {}
    vocabulary = Vocabulary.build(unknown, known, aliases)
    return label_lookups(unknown, known, {label: vocabulary.words_for(label) for label in unknown})


@dataclass
class StoredIwan:
    """A collection's IWAN graph loaded from the store: the index and what it needs to map ids.
    ``scheme`` is "iwan" or "published" (whose word ids are the graph's node numbers)."""

    collection: str
    collection_id: int
    index: IwanIndex
    word_ids: npt.NDArray[np.int64]  # store word id of each word index (published: node number)
    scheme: str = "iwan"
    graph_id: int = 0
    label_strength: float | None = None

    @property
    def published(self) -> bool:
        return self.scheme == PUBLISHED


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
        if graph.scheme == PUBLISHED:
            return _load_published(conn, collection, owner, graph, settings, with_images)
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
                .join(IMAGE_WORDS, of_image(IMAGE_WORDS))
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
    return StoredIwan(collection, owner, index, word_ids, graph_id=graph.id)


def _load_published(
    conn: Connection, collection: str, owner: int, graph: Any, settings: IwanSettings, with_images: bool
) -> StoredIwan:
    """A stored published graph as an `IwanIndex`: its nodes, node edges and (``with_images``) links."""
    names = conn.execute(select(NODES.c.name).where(NODES.c.graph_id == graph.id).order_by(NODES.c.node)).scalars()
    words = list(names)
    edge_rows = conn.execute(
        select(NODE_EDGES.c.source_node, NODE_EDGES.c.target_node, NODE_EDGES.c.strength).where(
            NODE_EDGES.c.graph_id == graph.id
        )
    ).all()
    edge_array = np.array(edge_rows, dtype=np.float64).reshape(-1, 3)
    edges = WordEdges(edge_array[:, 0].astype(np.int64), edge_array[:, 1].astype(np.int64), edge_array[:, 2])
    link_rows: Sequence[Any] = []
    labels: dict[int, str | None] = {}
    if with_images:
        link_rows = conn.execute(
            select(IMAGES.c.image_id, LINKS.c.node, LINKS.c.strength)
            .join(LINKS, of_image(LINKS))
            .where(IMAGES.c.collection_id == owner, LINKS.c.graph_id == graph.id)
        ).all()
        labels = dict(
            conn.execute(select(IMAGES.c.image_id, IMAGES.c.label).where(IMAGES.c.collection_id == owner)).all()
        )
    links = np.array(link_rows, dtype=np.float64).reshape(-1, 3)
    index = IwanIndex(
        words, edges, links[:, 0].astype(np.int64), links[:, 1].astype(np.int64), links[:, 2], settings, labels
    )
    node_ids = np.arange(len(words), dtype=np.int64)
    return StoredIwan(collection, owner, index, node_ids, PUBLISHED, graph.id, graph.label_strength)


def of_image(links: Table) -> ColumnElement[bool]:
    """The join of image words, graph links or ImageNet words to their images, on the image key and the collection
    (the copy revision 0006 added): a join on the distribution column of a store distributed by
    collection (docs/scaling.md), which plain PostgreSQL and SQLite answer by the key alone."""
    return and_(links.c.image_key == IMAGES.c.id, links.c.collection_id == IMAGES.c.collection_id)


def image_query(engine: Engine, stored: StoredIwan, image_id: int) -> WeightedWords:
    """The query of a stored image: its top-IWK words and strengths, read from the database (a
    published graph: ALL its ImageNet words that are nodes of the graph, `published_query`)."""
    if stored.published:
        with connect(engine) as conn:
            rows = conn.execute(
                select(IMAGENET_WORDS.c.name, IMAGENET_WORDS.c.probability)
                .join(IMAGES, of_image(IMAGENET_WORDS))
                .where(IMAGES.c.collection_id == stored.collection_id, IMAGES.c.image_id == image_id)
                .order_by(IMAGENET_WORDS.c.rank)
            ).all()
        if not rows:
            raise SemretError(f"image {image_id} is not in collection {stored.collection!r} or has no ImageNet words")
        return published_query(stored.index, [r[0] for r in rows], [float(r[1]) for r in rows])
    with connect(engine) as conn:
        rows = conn.execute(
            select(IMAGE_WORDS.c.word_id, IMAGE_WORDS.c.strength)
            .join(IMAGES, of_image(IMAGE_WORDS))
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
    """Ranks a collection's images in the database from one query's word distances, reading only
    the best few links of each reached word: the cost grows with the words reached times k, not
    with the collection.

    An image's distance is the minimum over its links of (word distance + 1 / strength), so of a
    word's links only its k best by (distance, image id) can give a top-k image its distance: an
    image whose best link is beyond them has k images ahead of it. One statement, on one
    connection, with the finite word distances as parameters (PostgreSQL: two arrays, ``unnest``-ed;
    SQLite: one JSON array, read with ``json_each``), takes for each reached word

    - its first 2k links in the order of the ranking index (strength descending, then the user's
      image id: ``ix_image_words_word_order``, or ``ix_iwan_graph_links_node_order`` for a
      published graph), within the collection, the graph's links (rank <= top-IWK) and without the
      excluded image; these hold every link stronger than the k-th and the first k (by id) of those
      as strong as it, so every tie at the k-th place is settled by id as in memory;
    - and, from the k-th link, the links weaker than it whose distance rounds to the same value
      (``d + 1/s`` can equal ``d + 1/s_k`` for a slightly smaller ``s``): a range of strengths just
      below the k-th's, first k by id, in practice empty;

    then each image's minimum, ordered by distance then image id, LIMIT k. PostgreSQL reads a
    word's links with ``LATERAL ... LIMIT``; SQLite, which has no LATERAL, finds the k-th and the
    2k-th link with correlated scalar subqueries and reads the first 2k as index ranges bounded by
    the 2k-th (strength, image id), from the index alone. The distances reach the database
    exactly (SQLite gets each as integers, a mantissa and powers of two, since its text to number
    conversion may be off in the last bit), and the arithmetic is the fast path's, so the results
    and their tie order are the same as in memory, on PostgreSQL and SQLite.
    """

    #: A lower bound of every link weight (strengths are at most 1), for the early stop.
    min_link_weight = 1.0

    def __init__(self, engine: Engine, stored: StoredIwan) -> None:
        self.engine = engine
        self.stored = stored
        self._ntotal: int | None = None

    def _links(self) -> tuple[Table, Any, ColumnElement[bool]]:
        """The graph's image -> word links: (table, its word column, which rows): the image words of
        rank <= top-IWK, or a published graph's stored links."""
        if self.stored.published:
            return LINKS, LINKS.c.node, LINKS.c.graph_id == self.stored.graph_id
        return IMAGE_WORDS, IMAGE_WORDS.c.word_id, IMAGE_WORDS.c.rank <= self.stored.index.settings.top_iwk

    @property
    def ntotal(self) -> int:
        """The number of images ranked (those with a link), as the in-memory index counts them;
        asked of the database once."""
        if self._ntotal is None:
            links, _, which = self._links()
            with connect(self.engine) as conn:
                self._ntotal = int(
                    conn.execute(
                        select(func.count(links.c.image_key.distinct())).where(
                            links.c.collection_id == self.stored.collection_id, which
                        )
                    ).scalar_one()
                )
        return self._ntotal

    def parameters(self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None) -> dict[str, Any]:
        """The statement's parameters: the reached words and their distances (exactly), k, the
        collection or graph, top-IWK and the excluded image."""
        reached = np.flatnonzero(np.isfinite(word_distances))
        word_ids = self.stored.word_ids[reached].tolist()
        distances = word_distances[reached].tolist()
        if self.engine.dialect.name == "postgresql":
            values: dict[str, Any] = {"word_ids": word_ids, "distances": distances}
        else:
            terms = [[word, *_exact_terms(d)] for word, d in zip(word_ids, distances, strict=True)]
            values = {"reached": json.dumps(terms)}
        values |= {"k": k, "depth": 2 * k, "collection": self.stored.collection_id}
        if self.stored.published:
            values["graph"] = self.stored.graph_id
        else:
            values["top_iwk"] = self.stored.index.settings.top_iwk
        if exclude is not None:
            values["exclude"] = exclude
        return values

    def statement(self, excluding: bool) -> TextClause:
        """The ranking statement for this store's dialect and graph scheme (the same text every
        time, so the database prepares it once)."""
        return ranking_statement(self.engine.dialect.name, self.stored.published, excluding)

    def __call__(
        self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        out_distances = np.full(k, np.inf)
        out_ids = np.full(k, NO_IMAGE, dtype=np.int64)
        with connect(self.engine) as conn:
            found = conn.execute(self.statement(exclude is not None), self.parameters(word_distances, k, exclude))
            for position, (image_id, value) in enumerate(found):
                out_ids[position], out_distances[position] = image_id, value
        return out_distances, out_ids


#: The strengths just below the k-th link's that can give the same distance: d + 1/s rounds to
#: d + 1/s_k only if 1/s - 1/s_k is within a few ulps of d + 1/s_k, i.e. s >= s_k / (1 + (s_k d + 1)
#: 2**-50 or so); 2**-40 leaves a margin for the rounding of the bound itself.
_COLLAPSE_MARGIN = "9.094947017729282e-13"  # 2**-40


def _per_word(published: bool, alias: str, word: str, excluding: bool) -> str:
    """The condition on a link ``alias`` of the reached word ``word``: its graph's links, and not
    the excluded image."""
    if published:
        which = f"{alias}.node = {word} AND {alias}.graph_id = :graph AND {alias}.collection_id = :collection"
    else:
        which = f"{alias}.word_id = {word} AND {alias}.collection_id = :collection AND {alias}.rank <= :top_iwk"
    return which + (f" AND {alias}.image_id <> :exclude" if excluding else "")


def _ranking_order(alias: str) -> str:
    """The order of the ranking indexes: strongest first, ties by the user's image id."""
    return f"{alias}.strength DESC, {alias}.image_id"


def ranking_statement(dialect: str, published: bool, excluding: bool) -> TextClause:
    """`SqlImageRanker`'s statement: per reached word its first 2k links in ranking order and the
    links whose distance rounds to the k-th's, then each image's minimum, the k nearest."""
    table = "iwan_graph_links" if published else "image_words"
    if dialect == "postgresql":
        one = "CAST(1 AS DOUBLE PRECISION)"
        sql = f"""
WITH reached AS MATERIALIZED (
    SELECT u.word_id, u.distance
    FROM unnest(CAST(:word_ids AS INTEGER[]), CAST(:distances AS DOUBLE PRECISION[])) AS u(word_id, distance)
), firsts AS MATERIALIZED (
    SELECT r.word_id, r.distance, f.image_id, f.strength, f.place
    FROM reached AS r CROSS JOIN LATERAL (
        SELECT l.image_id, l.strength, row_number() OVER (ORDER BY {_ranking_order("l")}) AS place
        FROM {table} AS l
        WHERE {_per_word(published, "l", "r.word_id", excluding)}
        ORDER BY {_ranking_order("l")}
        LIMIT :depth
    ) AS f
), candidates AS (
    SELECT f.image_id, f.distance + {one} / f.strength AS distance FROM firsts AS f
    UNION ALL
    SELECT c.image_id, f.distance + {one} / c.strength AS distance
    FROM firsts AS f CROSS JOIN LATERAL (
        SELECT l.image_id, l.strength
        FROM {table} AS l
        WHERE {_per_word(published, "l", "f.word_id", excluding)}
            AND l.strength < f.strength
            AND l.strength >= f.strength / (1 + (f.strength * f.distance + 1) * {_COLLAPSE_MARGIN})
            AND f.distance + {one} / l.strength <= f.distance + {one} / f.strength
        ORDER BY l.image_id
        LIMIT :k
    ) AS c
    WHERE f.place = :k
)
SELECT image_id, min(distance) AS distance FROM candidates
GROUP BY image_id
ORDER BY 2, 1
LIMIT :k"""
        return text(sql)
    # [[word id, m, u1, u2, v1, v2, v3], ...]: the distance is m * u1 * u2 / v1 / v2 / v3, all
    # integers (the u and v powers of two), which SQLite reads exactly and scales without rounding.
    part = [f"json_extract(t.value, '$[{i}]')" for i in range(2 + _UP_FACTORS + _DOWN_FACTORS)]
    distance = f"CAST({part[1]} AS REAL)" + "".join(f" * {p}" for p in part[2 : 2 + _UP_FACTORS])
    distance += "".join(f" / {p}" for p in part[2 + _UP_FACTORS :])
    # SQLite has no LATERAL: per word, the k-th and the 2k-th link in index order are correlated
    # scalar subqueries, and the first 2k links a range of the index up to the 2k-th, (strength,
    # image id) as a cursor: two ranges (stronger; as strong and id up to it), read from the index
    # alone. The links that round alike below the k-th are a correlated rowid IN (... LIMIT k).
    word = _per_word(published, "x", "r.word_id", excluding)
    sql = f"""
WITH reached AS MATERIALIZED (
    SELECT CAST({part[0]} AS INTEGER) AS word_id, {distance} AS distance FROM json_each(:reached) AS t
), bounds AS MATERIALIZED (
    SELECT r.word_id, r.distance,
        (SELECT x.strength FROM {table} AS x WHERE {word} ORDER BY {_ranking_order("x")}
         LIMIT 1 OFFSET :k - 1) AS kth,
        (SELECT x.strength FROM {table} AS x WHERE {word} ORDER BY {_ranking_order("x")}
         LIMIT 1 OFFSET :depth - 1) AS last_strength,
        (SELECT x.image_id FROM {table} AS x WHERE {word} ORDER BY {_ranking_order("x")}
         LIMIT 1 OFFSET :depth - 1) AS last_id
    FROM reached AS r
), candidates AS (
    SELECT l.image_id, b.distance + 1.0 / l.strength AS distance
    FROM bounds AS b CROSS JOIN {table} AS l
    WHERE {_per_word(published, "l", "b.word_id", excluding)}
        AND (l.strength > coalesce(b.last_strength, -1.0)
             OR (l.strength = b.last_strength AND l.image_id <= b.last_id))
    UNION ALL
    SELECT l.image_id, b.distance + 1.0 / l.strength AS distance
    FROM bounds AS b CROSS JOIN {table} AS l
    WHERE b.kth IS NOT NULL AND l.rowid IN (
        SELECT x.rowid FROM {table} AS x
        WHERE {_per_word(published, "x", "b.word_id", excluding)}
            AND x.strength < b.kth
            AND x.strength >= b.kth / (1 + (b.kth * b.distance + 1) * {_COLLAPSE_MARGIN})
            AND b.distance + 1.0 / x.strength <= b.distance + 1.0 / b.kth
        ORDER BY x.image_id
        LIMIT :k
    )
)
SELECT image_id, min(distance) AS distance FROM candidates
GROUP BY image_id
ORDER BY 2, 1
LIMIT :k"""
    return text(sql)


#: SQLite gets a distance m * 2**shift as m and powers of two of at most 2**62 (its integers are
#: 64-bit): this many to multiply by, then this many to divide by, so shifts from -186 to 124.
_MAX_SHIFT = 62
_UP_FACTORS, _DOWN_FACTORS = 2, 3


def _exact_terms(value: float) -> list[int]:
    """Integers [m, u1, u2, v1, v2, v3], the u and v powers of two of at most 2**62, with
    ``value == m * u1 * u2 / v1 / v2 / v3`` exactly in floating point: m has at most 53 bits, so
    it is a float as it is, and every factor only moves the exponent."""
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    m, shift = int(mantissa * 2**53), exponent - 53  # value = m * 2**shift, |m| < 2**53
    while m and m % 2 == 0:  # the fewest bits, so that the shift is as small as it can be
        m, shift = m // 2, shift + 1
    if m == 0:
        shift = 0
    if not -_DOWN_FACTORS * _MAX_SHIFT <= shift <= _UP_FACTORS * _MAX_SHIFT:
        raise SemretError(f"the word distance {value!r} is too large or too small to rank in SQLite")
    return [m, *_powers_of_two(max(shift, 0), _UP_FACTORS), *_powers_of_two(max(-shift, 0), _DOWN_FACTORS)]


def _powers_of_two(shift: int, count: int) -> list[int]:
    """``count`` powers of two of at most 2**62 whose product is 2**shift."""
    parts = []
    for _ in range(count):
        part = min(shift, _MAX_SHIFT)
        parts.append(2**part)
        shift -= part
    return parts


def image_links(
    engine: Engine, stored: StoredIwan, image_ids: Sequence[int]
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """The top-IWK links (word indices, strengths) of a few images, read from the database."""
    wanted = [int(i) for i in image_ids if i != NO_IMAGE]
    links: dict[int, tuple[list[int], list[float]]] = {i: ([], []) for i in wanted}
    table, word, which = SqlImageRanker(engine, stored)._links()
    with connect(engine) as conn:
        rows = conn.execute(
            select(IMAGES.c.image_id, word, table.c.strength)
            .join(table, of_image(table))
            .where(IMAGES.c.collection_id == stored.collection_id, IMAGES.c.image_id.in_(wanted), which)
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


def iwan_searcher(engine: Engine, collection: str, *, in_sql: bool = False) -> StoredIwan:
    """A collection's IWAN graph ready to search: its images ranked in memory, or with ``in_sql``
    inside the database (`SqlImageRanker`, the links left there). The one place that chooses; the
    index's `search` is the same either way."""
    stored = load_iwan(engine, collection, with_images=not in_sql)
    stored.index.ranker = SqlImageRanker(engine, stored) if in_sql else None
    return stored
