"""Semantic-hash search inside PostgreSQL with pgvector: one SQL statement per batch of queries.

The statement is pgvector's binary-quantization pattern (pgvector README, "Binary Quantization"):
a shortlist of the m codes nearest by Hamming distance (``<~>`` on ``bit(n)``), re-ranked by
cosine distance (``<=>``) of the embeddings. The queries' codes and embeddings go in as arrays,
``unnest``-ed and each joined LATERAL to its results (up to `BATCH_QUERIES` per statement). Two
scans:

- ``"approximate"``: the (model, collection)'s HNSW index gives the nearest codes
  (``hnsw.ef_search``, default max(40, 4m); ``hnsw.iterative_scan = strict_order``, pgvector
  0.8: the scan goes on past ef_search until the LIMIT, up to 4m codes, is met), of which the m
  first by (distance, image id) are the shortlist: codes tied at the m-th distance (short codes
  tie a lot) are taken by id as in memory whenever the index found them. The re-rank is
  pgvector's; the scores are 1 - the cosine distance.
- ``"exact"``: no index (``enable_indexscan`` and ``enable_bitmapscan`` off for the statement's
  transaction): the shortlist is the m nearest by (Hamming distance, image id), as in memory; the
  statement returns the m shortlisted rows with their stored float32 embeddings, and they are
  re-ranked by `semret.core.cosine.CosineIndex` (its defined similarity, ties by id), so the
  results are exactly those of `SemanticHashIndex` in mode "rerank". This is also the check of
  the approximate scan: pgvector's HNSW on bit vectors has returned wrong neighbours in some
  versions, and the exact scan's results are what the index's are measured against.

Mode ``"hamming"`` is the shortlist alone (k nearest codes; scores minus the distances), exact or
approximate the same way; it serves codes of any length (the ``bit_count`` path stops at 64 bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, text

from semret.core.codes import check_packed
from semret.core.cosine import CosineIndex, normalise
from semret.core.hamming import hamming_distances
from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.core.validation import check_choice, check_k
from semret.errors import SemretError
from semret.hashing.retrieval import HashQueries
from semret.sql.engine import connect
from semret.sql.images_store import collection_id
from semret.sql.pgvector_store import (
    TABLE_NAME,
    bit_strings,
    code_expression,
    partial_predicate,
    pgvector_state,
    vector_text,
)

if TYPE_CHECKING:
    from semret.sql.hash_store import StoredModel

Scan = Literal["exact", "approximate"]
SCANS: tuple[str, ...] = get_args(Scan)
PgMode = Literal["hamming", "rerank"]
PG_MODES: tuple[str, ...] = get_args(PgMode)
#: pgvector's default ``hnsw.ef_search``; the search asks for at least 4m (the shortlist's
#: candidates, `PgvectorHashSearcher.candidates`).
DEFAULT_EF_SEARCH = 40
#: Queries sent in one statement (arrays of codes and embeddings).
BATCH_QUERIES = 1000


class PgvectorHashSearcher(SearcherBase):
    """A stored collection's hashes under one model, searched inside PostgreSQL with pgvector.

    ``mode`` "rerank" (Hamming shortlist of m, then cosine; queries are `HashQueries`) or
    "hamming" (queries are packed codes, or `HashQueries` with codes); ``scan`` "exact" or
    "approximate" (see the module docstring); ``shortlist`` m as in `SemanticHashIndex` (None:
    2k); ``ef_search`` pgvector's ``hnsw.ef_search`` (None: max(40, 4m); more finds more of the
    true shortlist, slower); ``connections``: a batch of queries is split over up to this many
    pooled connections, whose statements PostgreSQL runs at once, each on a core of its own (the
    results are the same). A searcher may be shared by threads: each `search` takes pooled
    connections (``last_candidates`` is then the last call's).
    """

    backend = "postgresql"

    def __init__(
        self,
        engine: Engine,
        model: StoredModel,
        collection: str,
        mode: str = "rerank",
        scan: str = "approximate",
        shortlist: int | None = None,
        ef_search: int | None = None,
        connections: int = 1,
    ) -> None:
        self.connections = check_k(connections, "connections")
        self.mode: PgMode = check_choice("pgvector mode", mode, PG_MODES)  # type: ignore[assignment]
        self.scan: Scan = check_choice("scan", scan, SCANS)  # type: ignore[assignment]
        self.shortlist = None if shortlist is None else check_k(shortlist, "shortlist")
        self.ef_search = None if ef_search is None else check_k(ef_search, "ef_search")
        self.engine, self.model, self.collection = engine, model, collection
        self.last_candidates = np.zeros(0, dtype=np.int64)
        with connect(engine) as conn:
            state = pgvector_state(conn)
            if not state.enabled:
                raise SemretError(f"pgvector search needs PostgreSQL with pgvector ({state.reason})")
            self._collection_id = collection_id(conn, collection)
            self._ntotal = int(
                conn.execute(text(f"SELECT count(*) FROM {TABLE_NAME} WHERE {self._where()}")).scalar_one()
            )

    def __repr__(self) -> str:
        return (
            f"PgvectorHashSearcher(model={self.model.name!r}, collection={self.collection!r}, mode={self.mode!r}, "
            f"scan={self.scan!r}, shortlist={self.shortlist}, ntotal={self.ntotal})"
        )

    @property
    def score_name(self) -> str:  # type: ignore[override]
        return "-hamming" if self.mode == "hamming" else "cosine"

    @property
    def ntotal(self) -> int:
        return self._ntotal

    def query_count(self, queries: Any) -> int:
        return len(queries)

    def empty_error(self) -> SemretError:
        return SemretError(
            f"collection {self.collection!r} has no codes of model {self.model.name!r}: run `semret hash encode`"
        )

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[Any]:
        """Hamming distances in mode "hamming"; the cosine similarities otherwise."""
        return hamming_distances(scores) if self.mode == "hamming" else np.asarray(scores)

    # --- the statement -----------------------------------------------------------------------

    def _where(self, alias: str = "") -> str:
        return partial_predicate(self.model.id, self._collection_id, alias)

    def _shortlist_sql(self) -> str:
        """The m nearest codes to ``q.code`` by (distance, image id): over the whole collection
        (exact), or over the :candidates nearest that the HNSW index gives (approximate), so that
        codes at the m-th distance are taken by id there too whenever the index found them all."""
        distance = f"{code_expression(self.model.n_bits, 'v.')} <~> q.code"
        columns = f"v.image_key, v.image_id, v.embedding, {distance} AS hamming"
        if self.scan == "exact":
            return (
                f"SELECT {columns} FROM {TABLE_NAME} v WHERE {self._where('v.')} ORDER BY hamming, v.image_id LIMIT :m"
            )
        return (
            f"SELECT * FROM (SELECT {columns} FROM {TABLE_NAME} v "
            f"WHERE {self._where('v.')} ORDER BY {distance} LIMIT :candidates) c "
            "ORDER BY c.hamming, c.image_id LIMIT :m"
        )

    def statement(self) -> str:
        """The one SQL statement of a batch of queries: each query (a row of ``unnest`` of the
        arrays :codes and, for "rerank", :embeddings, numbered ``i`` from 1) joined LATERAL to its
        results; parameters also :m, :candidates (approximate) and :k."""
        n_bits = int(self.model.n_bits)
        shortlist = self._shortlist_sql()
        if self.mode == "hamming":
            queries = f"unnest(CAST(:codes AS bit({n_bits})[])) WITH ORDINALITY AS q(code, i)"
            return f"SELECT q.i, r.image_id, r.hamming FROM {queries} CROSS JOIN LATERAL ({shortlist}) r"
        queries = (
            f"unnest(CAST(:codes AS bit({n_bits})[]), CAST(:embeddings AS vector[])) "
            "WITH ORDINALITY AS q(code, embedding, i)"
        )
        cosine = "s.embedding <=> q.embedding"
        if self.scan == "approximate":
            results = (
                f"SELECT s.image_id, 1 - ({cosine}) AS cosine FROM ({shortlist}) s "
                f"ORDER BY {cosine}, s.image_id LIMIT :k"
            )
            return f"SELECT q.i, r.image_id, r.cosine FROM {queries} CROSS JOIN LATERAL ({results}) r"
        # exact: every shortlisted row, with the stored float32 bytes for the re-rank in Python
        results = (
            f"SELECT s.image_id, h.embedding FROM ({shortlist}) s JOIN image_hashes h "
            f"ON h.model_id = {int(self.model.id)} AND h.image_key = s.image_key"
        )
        return f"SELECT q.i, r.image_id, r.embedding FROM {queries} CROSS JOIN LATERAL ({results}) r"

    def candidates(self, m: int) -> int:
        """How deep the HNSW scan may go for a shortlist of m: 4m codes (at least 40), so that a
        tie at the m-th distance is seen whole; pgvector's iterative scan goes past ef_search."""
        return max(DEFAULT_EF_SEARCH, 4 * m)

    def _settings(self, conn: Connection, m: int) -> None:
        """The scan's settings for this transaction only (``set_config(..., true)``: SET LOCAL)."""
        if self.scan == "exact":
            settings = {"enable_indexscan": "off", "enable_bitmapscan": "off"}
        else:
            ef_search = min(self.ef_search or max(DEFAULT_EF_SEARCH, 4 * m), 1000)
            settings = {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "strict_order"}
        calls = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings.items())
        conn.execute(text(f"SELECT {calls}"))

    # --- search --------------------------------------------------------------------------------

    def _search(self, queries: Any, k: int, n_excluded: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        embeddings, codes = self._queries(queries)
        if self.mode == "hamming":
            m = k
        else:
            # as `SemanticHashIndex`: the shortlist counts the results asked for
            wanted = k - n_excluded
            m = 2 * k if self.shortlist is None else self.shortlist + n_excluded
            if m - n_excluded < wanted:
                raise SemretError(f"the shortlist ({m - n_excluded}) must be at least k ({wanted})")
            m = min(m, self._ntotal)
        scores = np.full((len(codes), k), MISSING_SCORE, dtype=np.float32)
        ids = np.full((len(codes), k), NO_ID, dtype=np.int64)
        statement = text(self.statement())
        per_statement = max(1, min(BATCH_QUERIES, -(-len(codes) // self.connections)))
        batches = [(start, min(start + per_statement, len(codes))) for start in range(0, len(codes), per_statement)]

        def run(share: list[tuple[int, int]]) -> dict[int, list[Any]]:
            found: dict[int, list[Any]] = {}
            with connect(self.engine) as conn:
                self._settings(conn, m)
                for start, stop in share:
                    params: dict[str, Any] = {
                        "codes": bit_strings(codes[start:stop], self.model.n_bits),
                        "m": m,
                        "k": k,
                        "candidates": self.candidates(m),
                    }
                    if embeddings is not None:
                        params["embeddings"] = [vector_text(row) for row in embeddings[start:stop]]
                    for result in conn.execute(statement, params):
                        found.setdefault(start + int(result.i) - 1, []).append(result)
            return found

        workers = min(self.connections, len(batches))
        if workers <= 1:
            found = run(batches)
        else:  # each worker its own connection and every workers-th batch
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="semret-pgvector") as pool:
                parts = list(pool.map(run, [batches[w::workers] for w in range(workers)]))
            found = {row: rows for part in parts for row, rows in part.items()}
        for row, rows in found.items():
            if self.mode == "rerank" and self.scan == "exact":
                assert embeddings is not None
                row_scores, row_ids = _rerank(embeddings[row], rows, k, self.model.embedding_dim)
            else:
                sign = -1.0 if self.mode == "hamming" else 1.0
                pairs = [(np.float32(sign * float(r[2])), int(r.image_id)) for r in rows]
                pairs.sort(key=lambda pair: (-pair[0], pair[1]))  # the contract's order, on the float32 scores
                row_scores, row_ids = [float(score) for score, _ in pairs][:k], [image for _, image in pairs][:k]
            ids[row, : len(row_ids)] = row_ids
            scores[row, : len(row_scores)] = row_scores
        self.last_candidates = np.full(
            len(codes), self.candidates(m) if self.scan == "approximate" else self._ntotal, dtype=np.int64
        )
        return scores, ids

    def _queries(self, queries: Any) -> tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.uint8]]:
        """The query embeddings (None in mode "hamming") and codes, checked."""
        if isinstance(queries, HashQueries):
            raw_codes, raw_embeddings = queries.codes, queries.embeddings
        elif self.mode == "hamming":
            raw_codes, raw_embeddings = queries, None
        else:
            raise SemretError("semantic hash queries are a HashQueries(embeddings, codes) record")
        if raw_codes is None:
            raise SemretError(f"mode {self.mode!r} needs query codes")
        codes = check_packed(raw_codes, self.model.n_bits, "query codes")
        if self.mode == "hamming":
            return None, codes
        if raw_embeddings is None:
            raise SemretError(f"mode {self.mode!r} needs query embeddings")
        embeddings = np.asarray(raw_embeddings)
        normalise(embeddings, self.model.embedding_dim, "query embeddings")  # checks shape and values
        if len(embeddings) != len(codes):
            raise SemretError(f"got {len(embeddings)} query embeddings and {len(codes)} query codes")
        return embeddings.astype(np.float32), codes


def _rerank(embedding: npt.NDArray[np.float32], rows: Sequence[Any], k: int, dim: int) -> tuple[list[float], list[int]]:
    """The k best shortlisted rows by `CosineIndex`'s defined similarity (ties by id)."""
    if not rows:
        return [], []
    index = CosineIndex(dim)
    stored = np.frombuffer(b"".join(r.embedding for r in rows), dtype=np.float32).reshape(len(rows), dim)
    index.add([int(r.image_id) for r in rows], stored)
    scores, ids = index.search(embedding[None, :], k)
    keep = ids[0] != NO_ID
    return scores[0][keep].tolist(), ids[0][keep].tolist()
