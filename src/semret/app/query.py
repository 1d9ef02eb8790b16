"""Query a stored collection (or an index file): the k images nearest to a query, through IWAN,
semantic hashing or a vector index. Each function returns the result rows the command line prints
(``rank``, ``image_id``, ``label`` and a ``distance`` or ``score``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from semret.core.hamming import HammingIndex
from semret.core.search import SearcherBase
from semret.core.validation import check_choice
from semret.errors import SemretError
from semret.hashing.retrieval import HashQueries, SemanticHashIndex
from semret.iwan.index import NO_IMAGE
from semret.sql.engine import connect
from semret.sql.hash_store import SqlHammingSearcher, hamming_searcher, hash_searcher, load_hashes, model_by_name
from semret.sql.iwan_store import collection_with_graph, image_links, image_query, iwan_searcher
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
    scores, ids = index.search([query], k, exclude_ids=None if image_id is None else [image_id])
    distances = index.to_distance(scores)
    found = [(int(i), float(d)) for i, d in zip(ids[0], distances[0], strict=True) if i != NO_IMAGE]
    paths = index.explain_links(query, image_links(engine, stored, [i for i, _ in found]))
    results = [
        {
            "rank": rank,
            "image_id": image,
            "label": index.labels.get(image),
            "distance": distance,
            "path": [step.name for step in paths[image]],
        }
        for rank, (image, distance) in enumerate(found, start=1)
    ]
    return IwanAnswer(name, results)


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
    stored = load_hashes(engine, stored_model, collection)
    position = int(np.searchsorted(stored.image_ids, image_id))
    if position >= len(stored.image_ids) or stored.image_ids[position] != image_id:
        raise SemretError(f"image {image_id} has no code of model {model!r} in collection {collection!r}")
    searcher: SearcherBase
    query: Any = HashQueries(stored.embeddings[position : position + 1], stored.codes[position : position + 1])
    if in_db and mode == "hamming":  # the store's Hamming searcher: pgvector, bit_count, or in memory
        searcher = hamming_searcher(engine, stored_model, collection, scan=scan or "exact")
        query = query.codes
    elif in_db:
        searcher = hash_searcher(engine, stored_model, collection, shortlist, scan=scan or "approximate")
    else:
        # the shortlist counts the results asked for: the left-out query image gets a place of its own
        searcher = SemanticHashIndex(
            stored_model.n_bits,
            stored_model.embedding_dim,
            mode,  # type: ignore[arg-type]
            shortlist,
            hamming=hamming,
        )
        searcher.add(stored.image_ids, stored.embeddings, stored.codes)
    found_scores, found_ids = searcher.search(query, k, exclude_ids=[image_id])
    scores, ids = found_scores[0].astype(np.float64), found_ids[0]
    distances = searcher.to_distance(found_scores)[0]
    labels = dict(zip(stored.image_ids.tolist(), stored.labels, strict=True))
    results = [
        {"rank": rank, "image_id": int(i), "label": labels.get(int(i)), "score": float(s)}
        | ({"hamming_distance": int(d)} if mode == "hamming" else {})
        for rank, (i, s, d) in enumerate(zip(ids, scores, distances, strict=True), start=1)
        if i != NO_IMAGE
    ]
    return HashAnswer(search_path(searcher), results)


@dataclass(frozen=True)
class VectorAnswer:
    """The index's kind, how many candidates it scored, and the images found."""

    kind: str
    candidates: int
    results: list[dict[str, Any]]


def query_vector(index_file: str | Path, image_id: int, k: int = 10) -> VectorAnswer:
    """The k images nearest by cosine to an indexed image, as the index finds them."""
    from semret.indexes import load_index
    from semret.indexes.base import read_index_extra

    index = load_index(index_file)
    labels = read_index_extra(index_file).get("labels")
    ids = index.ids
    position = int(np.searchsorted(ids, image_id))
    if position >= len(ids) or ids[position] != image_id:
        raise SemretError(f"image {image_id} is not in the index {index_file}")
    scores, found = index.search(index.vectors([image_id]), k, exclude_ids=[image_id])
    pairs = [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i >= 0]
    label_of = (lambda i: str(labels[int(np.searchsorted(ids, i))]) or None) if labels is not None else (lambda i: None)
    results = [
        {"rank": rank, "image_id": i, "label": label_of(i), "score": score}
        for rank, (i, score) in enumerate(pairs, start=1)
    ]
    return VectorAnswer(index.kind, int(index.last_candidates[0]), results)
