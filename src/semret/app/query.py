"""Query a stored collection (or an index file): the k images nearest to a query, through IWAN,
semantic hashing or a vector index. Each function returns the result rows the command line prints
(``rank``, ``image_id``, ``label`` and a ``distance`` or ``score``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.core.hamming import HammingIndex
from semret.core.search import SearcherBase
from semret.core.sorted_ids import position_of
from semret.core.validation import check_choice
from semret.errors import SemretError
from semret.hashing.retrieval import HashQueries, SemanticHashIndex
from semret.iwan.index import NO_IMAGE, WeightedWords
from semret.sql.engine import connect
from semret.sql.hash_store import (
    SqlHammingSearcher,
    StoredHashes,
    StoredModel,
    hamming_searcher,
    hash_searcher,
    load_hashes,
    model_by_name,
)
from semret.sql.iwan_store import StoredIwan, collection_with_graph, image_links, image_query, iwan_searcher
from semret.sql.pgvector_search import SCANS, PgvectorHashSearcher
from semret.sql.pgvector_store import pgvector_state


@dataclass(frozen=True)
class IwanAnswer:
    """The collection searched and the images found, each with its distance and path."""

    collection: str
    results: list[dict[str, Any]]


def query_iwan(
    engine: Engine,
    collection: str | None,
    image_id: int | None = None,
    words: dict[str, float] | None = None,
    k: int = 10,
    in_sql: bool = False,
) -> IwanAnswer:
    """The k images nearest to a stored image or a weighted word list in a collection's IWAN graph
    (default: the one collection with a graph), with the path (query -> words -> image) to each."""
    if (image_id is None) == (words is None):
        raise SemretError("give exactly one of --image-id and --words")
    name = collection_with_graph(engine, collection)
    stored = iwan_searcher(engine, name, in_sql=in_sql)
    index = stored.index
    query = image_query(engine, stored, image_id) if image_id is not None else index.query_from_words(words or {})
    results = iwan_results(engine, stored, query, k, exclude=image_id)
    return IwanAnswer(name, results)


def iwan_results(
    engine: Engine, stored: StoredIwan, query: WeightedWords, k: int, exclude: int | None = None
) -> list[dict[str, Any]]:
    """The rows of `query_iwan` for a query of a loaded graph: rank, image id, label, distance and
    the path (query -> words -> image), the ``exclude`` image left out."""
    index = stored.index
    scores, ids = index.search([query], k, exclude_ids=None if exclude is None else [exclude])
    distances = index.to_distance(scores)
    found = [(int(i), float(d)) for i, d in zip(ids[0], distances[0], strict=True) if i != NO_IMAGE]
    paths = index.explain_links(query, image_links(engine, stored, [i for i, _ in found]))
    return [
        {
            "rank": rank,
            "image_id": image,
            "label": index.labels.get(image),
            "distance": distance,
            "path": [step.name for step in paths[image]],
            "path_distances": [step.distance for step in paths[image]],
        }
        for rank, (image, distance) in enumerate(found, start=1)
    ]


@dataclass(frozen=True)
class HashAnswer:
    """Where the search ran (``search``: memory, PostgreSQL bit_count, or pgvector and its scan)
    and the images found."""

    search: str
    results: list[dict[str, Any]]


def search_path(searcher: SearcherBase) -> str:
    """How a hash searcher searches, in a few words (shown with the results)."""
    if isinstance(searcher, PgvectorHashSearcher):
        return "pgvector, HNSW index" if searcher.scan == "approximate" else "pgvector, exact scan"
    if isinstance(searcher, SqlHammingSearcher):
        return "PostgreSQL bit_count scan"
    return "memory"


def query_hash(
    engine: Engine,
    collection: str,
    model: str,
    image_id: int,
    mode: str = "rerank",
    k: int = 10,
    shortlist: int | None = None,
    in_db: bool = False,
    scan: str | None = None,
    hamming: str = "flat",
) -> HashAnswer:
    """The k images nearest to a stored image by semantic hashing: exact cosine, Hamming, or
    Hamming shortlist then cosine re-rank (the published default).

    With ``in_db``, mode "hamming" searches inside the database where it can (PostgreSQL with
    pgvector, else bit_count; else in memory over the stored codes), and mode "rerank" inside
    PostgreSQL with pgvector (an error elsewhere); on pgvector ``scan`` is "exact" or
    "approximate" (default: exact for "hamming", approximate for "rerank"). In memory, ``hamming``
    is the Hamming index's spec (`semret.core.hamming.HammingIndex.from_spec`: "flat", exact, or
    "ivf:nprobe=16", "multihash:nflip=2", approximate). ``search`` in the answer says where it ran."""
    stored_model = model_by_name(engine, model)
    HammingIndex.from_spec(hamming, stored_model.n_bits)  # a bad spec fails before the codes are read
    if in_db and hamming != "flat":
        raise SemretError("--hamming chooses the in-memory Hamming index: leave it out with --in-db")
    if in_db and mode not in ("hamming", "rerank"):
        raise SemretError("--in-db searches the codes: use it with --mode hamming or --mode rerank")
    if scan is not None:
        check_choice("scan", scan, SCANS)
    if in_db and mode == "rerank":
        with connect(engine) as conn:
            state = pgvector_state(conn)
        if not state.enabled:
            raise SemretError(
                f"--in-db --mode rerank needs PostgreSQL with pgvector ({state.reason}): "
                "use it with --mode hamming, or leave out --in-db"
            )
    loaded = load_hash_search(
        engine, stored_model, collection, mode, shortlist, in_db=in_db, scan=scan, hamming=hamming
    )
    results = hash_results(loaded, loaded.query_for(image_id), k, exclude=image_id)
    searcher = loaded.searcher
    return HashAnswer(search_path(searcher), results)


@dataclass(frozen=True)
class LoadedHash:
    """A hash model's codes for a collection, loaded, with the searcher of one mode over them."""

    model: StoredModel
    collection: str
    stored: StoredHashes
    searcher: SearcherBase
    mode: str
    in_db: bool

    def position(self, image_id: int) -> int:
        """The row of a stored image's code (an error when it has none)."""
        position = position_of(self.stored.image_ids, image_id)
        if position is None:
            raise SemretError(
                f"image {image_id} has no code of model {self.model.name!r} in collection {self.collection!r}"
            )
        return position

    def query_for(self, image_id: int) -> HashQueries:
        """A stored image's embedding and code, as a query."""
        row = self.position(image_id)
        return HashQueries(self.stored.embeddings[row : row + 1], self.stored.codes[row : row + 1])


def load_hash_search(
    engine: Engine,
    model: StoredModel,
    collection: str,
    mode: str = "rerank",
    shortlist: int | None = None,
    *,
    in_db: bool = False,
    scan: str | None = None,
    hamming: str = "flat",
) -> LoadedHash:
    """Read a model's codes for a collection and make the searcher `query_hash` describes."""
    stored = load_hashes(engine, model, collection)
    searcher: SearcherBase
    if in_db and mode == "hamming":  # the store's Hamming searcher: pgvector, bit_count, or in memory
        searcher = hamming_searcher(engine, model, collection, scan=scan or "exact")
    elif in_db:
        searcher = hash_searcher(engine, model, collection, shortlist, scan=scan or "approximate")
    else:
        # the shortlist counts the results asked for: the left-out query image gets a place of its own
        searcher = SemanticHashIndex(
            model.n_bits,
            model.embedding_dim,
            mode,  # type: ignore[arg-type]
            shortlist,
            hamming=hamming,
        )
        searcher.add(stored.image_ids, stored.embeddings, stored.codes)
    return LoadedHash(model, collection, stored, searcher, mode, in_db)


def hash_results(loaded: LoadedHash, query: HashQueries, k: int, exclude: int | None = None) -> list[dict[str, Any]]:
    """The rows of `query_hash` for one query (embedding and code): rank, image id, label, cosine
    score, and the Hamming distance in mode "hamming"; the ``exclude`` image left out."""
    searcher, mode = loaded.searcher, loaded.mode
    searched: Any = query.codes if loaded.in_db and mode == "hamming" else query
    found_scores, found_ids = searcher.search(searched, k, exclude_ids=None if exclude is None else [exclude])
    scores, ids = found_scores[0].astype(np.float64), found_ids[0]
    distances = searcher.to_distance(found_scores)[0]
    stored = loaded.stored
    labels = dict(zip(stored.image_ids.tolist(), stored.labels, strict=True))
    return [
        {"rank": rank, "image_id": int(i), "label": labels.get(int(i)), "score": float(s)}
        | ({"hamming_distance": int(d)} if mode == "hamming" else {})
        for rank, (i, s, d) in enumerate(zip(ids, scores, distances, strict=True), start=1)
        if i != NO_IMAGE
    ]


@dataclass(frozen=True)
class VectorAnswer:
    """The index's kind, how many candidates it scored, and the images found."""

    kind: str
    candidates: int
    results: list[dict[str, Any]]


@dataclass(frozen=True)
class LoadedIndex:
    """A vector index read from its file, with its images' labels (None where it has none). An
    index keeps the last search's candidate counts: ``lock`` makes a search and that read one
    step where threads share the index (`semret serve`)."""

    file: Path
    index: Any
    labels: npt.NDArray[np.str_] | None
    #: Where its vectors came from (`semret.app.indexes.IndexVectors.origin`), None where unknown.
    origin: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def vector_for(self, image_id: int) -> npt.NDArray[np.float32]:
        """An indexed image's vector, (1, d), as a query."""
        if position_of(self.index.ids, image_id) is None:
            raise SemretError(f"image {image_id} is not in the index {self.file}")
        return np.asarray(self.index.vectors([image_id]), dtype=np.float32)

    def label_of(self, image_id: int) -> str | None:
        if self.labels is None:
            return None
        return str(self.labels[int(np.searchsorted(self.index.ids, image_id))]) or None


def load_vector_index(index_file: str | Path) -> LoadedIndex:
    """An index written by `semret index build`, and its labels."""
    from semret.app.indexes import read_origin
    from semret.indexes import load_index
    from semret.indexes.base import read_index_extra

    index = load_index(index_file)
    extra = read_index_extra(index_file)
    return LoadedIndex(Path(index_file), index, extra.get("labels"), read_origin(extra))


def vector_results(
    loaded: LoadedIndex, vectors: npt.NDArray[np.float32], k: int, exclude: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The rows of `query_vector` for one query vector (rank, image id, label, cosine score) and
    how many candidates the index scored; the ``exclude`` image left out."""
    index = loaded.index
    with loaded.lock:
        scores, found = index.search(vectors, k, exclude_ids=None if exclude is None else [exclude])
        candidates = int(index.last_candidates[0])
    pairs = [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i >= 0]
    results = [
        {"rank": rank, "image_id": i, "label": loaded.label_of(i), "score": score}
        for rank, (i, score) in enumerate(pairs, start=1)
    ]
    return results, candidates


def query_vector(index_file: str | Path, image_id: int, k: int = 10) -> VectorAnswer:
    """The k images nearest by cosine to an indexed image, as the index finds them."""
    loaded = load_vector_index(index_file)
    results, candidates = vector_results(loaded, loaded.vector_for(image_id), k, exclude=image_id)
    return VectorAnswer(loaded.index.kind, candidates, results)
