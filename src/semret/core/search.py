"""The one search contract of semret, in memory or in a database.

Every searcher answers ``search(queries, k, *, exclude_ids=None) -> (scores, ids)`` as faiss does:
batch first, numpy in and out. ``scores`` are floats and **higher is better** everywhere (cosine
similarity and minus the Hamming distance as float32; minus the IWAN path length as float64, so
that it is exact), ``ids`` is int64; each row is
sorted by (score descending, id ascending) and padded with score -inf and id -1 when fewer results
exist. Results are bounded by the collection: the rows have ``min(k, ntotal)`` columns, so a huge
k costs no memory; a k beyond an int64 is an error.

``exclude_ids`` leaves ids out of the results, per query: one id per query (shape (queries,);
-1 or None for none), several ((queries, m), -1 for none), or None. It is implemented once, here: the searcher is asked
for m more results, then the excluded ids are dropped (vectorised), so a query image never counts
among its own results and no caller re-implements "search k + 1, then drop the query".

After each search ``last_candidates`` holds the work done per query (the candidates it scored),
``score_name`` says what the scores are, and `SearcherBase.to_distance` gives the raw distance
back where a searcher has one (Hamming distance, IWAN path length).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_k
from semret.errors import SemretError

__all__ = [
    "MISSING_SCORE",
    "NO_ID",
    "Scores",
    "SearchResult",
    "Searcher",
    "SearcherBase",
    "drop_excluded",
    "exclusion_matrix",
]

#: Id of a padding result.
NO_ID = -1
#: Score of a padding result.
MISSING_SCORE = -np.inf

Scores = npt.NDArray[np.floating[Any]]
Ids = npt.NDArray[np.int64]
SearchResult = tuple[Scores, Ids]


@runtime_checkable
class Searcher(Protocol):
    """What every searcher offers (see the module docstring)."""

    score_name: str
    last_candidates: npt.NDArray[np.int64]

    @property
    def ntotal(self) -> int: ...

    def search(self, queries: Any, k: int, *, exclude_ids: npt.ArrayLike | None = None) -> SearchResult: ...


class SearcherBase(ABC):
    """The contract's shared half: checks k, bounds the width by the collection, applies
    ``exclude_ids`` and records the work done. A subclass gives `ntotal` and `_search` (its own k
    best, k <= ntotal), sets ``last_candidates`` there, and overrides `query_count` only where a
    batch of its queries has no ``len``."""

    #: What the scores are, for tables ("cosine", "-hamming", "-path length"...).
    score_name: ClassVar[str] = "score"
    #: Where the search runs ("memory", "postgresql", "sqlite").
    backend: ClassVar[str] = "memory"
    #: Candidates scored per query by the last search.
    last_candidates: npt.NDArray[np.int64]

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of items searched."""

    def query_count(self, queries: Any) -> int:
        """How many queries ``queries`` holds: a batch's length (an array's rows, a list's items,
        a `HashQueries` record's queries)."""
        return len(queries)

    @abstractmethod
    def _search(self, queries: Any, k: int, n_excluded: int) -> SearchResult:
        """The k best results of each query (1 <= k <= ntotal), sorted, padded. ``n_excluded`` is
        how many of them the caller will drop (k already counts them)."""

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[Any]:
        """The raw distance of each score where the searcher has one; by default the scores."""
        return np.asarray(scores)

    def empty_error(self) -> SemretError:
        """The error of a search on an empty searcher."""
        return SemretError(f"the {type(self).__name__} is empty: add items before searching")

    def search(self, queries: Any, k: int, *, exclude_ids: npt.ArrayLike | None = None) -> SearchResult:
        """The k best results of each query, leaving out ``exclude_ids``: (scores, ids); see the
        module docstring."""
        k = check_k(k)
        if self.ntotal == 0:
            raise self.empty_error()
        n_queries = self.query_count(queries)
        excluded = exclusion_matrix(exclude_ids, n_queries)
        width = min(k, self.ntotal)
        asked = min(width + excluded.shape[1], self.ntotal)
        scores, ids = self._search(queries, asked, excluded.shape[1])
        return drop_excluded(scores, ids, excluded, width)


def exclusion_matrix(exclude_ids: npt.ArrayLike | None, n_queries: int) -> npt.NDArray[np.int64]:
    """``exclude_ids`` as a (queries, m) int64 array (-1 = nothing), checked."""
    if exclude_ids is None:
        return np.zeros((n_queries, 0), dtype=np.int64)
    if isinstance(exclude_ids, list | tuple) and any(item is None for item in exclude_ids):
        exclude_ids = [NO_ID if item is None else item for item in exclude_ids]  # None: nothing to leave out
    array = np.asarray(exclude_ids)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or len(array) != n_queries:
        raise SemretError(
            f"exclude_ids must give one id (or a row of ids) per query: {n_queries} queries, got shape {array.shape}"
        )
    if array.size and array.dtype.kind not in "iu":
        raise SemretError(f"exclude_ids must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def drop_excluded(scores: Scores, ids: Ids, excluded: npt.NDArray[np.int64], width: int) -> SearchResult:
    """Rows of (scores, ids) without each row's excluded ids, cut (or padded) to ``width`` columns,
    order kept."""
    if excluded.shape[1]:
        hit = np.zeros(ids.shape, dtype=np.bool_)
        for column in range(excluded.shape[1]):  # m is small: one comparison per excluded column
            hit |= (ids == excluded[:, column : column + 1]) & (excluded[:, column : column + 1] != NO_ID)
        if hit.any():
            order = np.argsort(hit, axis=1, kind="stable")  # kept first, in their order
            ids = np.take_along_axis(ids, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
            dropped = np.take_along_axis(hit, order, axis=1)
            ids[dropped], scores[dropped] = NO_ID, MISSING_SCORE
    if ids.shape[1] >= width:
        return np.ascontiguousarray(scores[:, :width]), np.ascontiguousarray(ids[:, :width])
    pad = width - ids.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, pad)), constant_values=MISSING_SCORE),
        np.pad(ids, ((0, 0), (0, pad)), constant_values=NO_ID),
    )
