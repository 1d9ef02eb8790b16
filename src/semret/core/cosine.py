"""`CosineIndex`: exact cosine k-nearest-neighbour search ("Algo-2"), the ground truth for vector indexes.

It follows semret's search contract (`semret.core.search`): ``add(ids, vectors)``,
``search(queries, k, *, exclude_ids=None) -> (similarities, ids)``, batch first, numpy in and out,
``min(k, ntotal)`` columns.
Vectors (and queries) are L2-normalised (in float64) and kept as float32; zero, NaN or infinite
vectors are errors.

The similarity of a query q and a stored vector x is defined as

    float32( sum over j of float64(q_j) * float64(x_j) )

on the stored float32 unit vectors (each product exact in float64), summed along the vector by
numpy's ``einsum`` in float64 (the same order for every pair), so a pair has the same similarity
whichever way it is found. Results are sorted by
(similarity descending, id ascending): ties are broken by id, also at the k-th place.

How `search` finds them: per block of queries, one float32 matrix product gives approximate
similarities; `np.partition` gives each query's k-th largest, t; every vector whose approximate
similarity is >= t - eps is a candidate, with eps a bound of twice the float32 rounding error of
a dot product of unit vectors (so no vector of the exact top k can be missed); the candidates'
similarities are then computed as defined above and sorted. `search_subset` scores given
candidates per query the same way, e.g. a Hamming shortlist (`semret.hashing.retrieval`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.core.validation import check_dim, check_ids, check_k, merge_sorted_ids
from semret.errors import SemretError

__all__ = ["CosineIndex", "check_directions", "descending_key", "normalise", "pair_similarities", "row_similarities"]

#: Similarity of a padding result.
MISSING_SIMILARITY = MISSING_SCORE
#: Query x vector similarities computed at once by the matrix product (float32 each).
_PRODUCT_AREA = 1 << 25
#: Float64 elements gathered at once for the exact similarities.
_EXACT_AREA = 1 << 20


def normalise(vectors: npt.ArrayLike, dim: int, what: str = "vectors") -> npt.NDArray[np.float32]:
    """(n, dim) vectors divided by their L2 norm (computed in float64), as C-contiguous float32.

    Raises `SemretError` on another shape, on non-numbers, NaN or infinity, and on zero vectors.
    """
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dim:
        raise SemretError(f"{what} must be a 2-d (n, {dim}) array, got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise SemretError(f"{what} must be real numbers, got dtype {array.dtype}")
    result = np.empty(array.shape, dtype=np.float32)
    step = max(1, _EXACT_AREA // dim)
    for start in range(0, len(array), step):  # in pieces: float64 copies stay small
        wide = array[start : start + step].astype(np.float64)
        if not np.isfinite(wide).all():
            raise SemretError(f"{what} contain NaN or infinite values")
        norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
        zero = np.flatnonzero(norms == 0)
        if len(zero):
            raise SemretError(f"{what} {(zero + start)[:5].tolist()} are zero: a zero vector has no direction")
        np.divide(wide, norms[:, None], out=result[start : start + step], casting="same_kind")
    return result


def check_directions(vectors: npt.NDArray[np.generic], what: str = "vectors") -> None:
    """The checks of `normalise` on (n, d) vectors without keeping a normalised copy: real,
    finite, non-zero rows."""
    step = max(1, _EXACT_AREA // max(1, vectors.shape[1]))
    for start in range(0, len(vectors), step):
        normalise(vectors[start : start + step], vectors.shape[1], what)


def pair_similarities(
    unit_queries: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    n_pairs: int,
    vectors_of: Callable[[int, int], npt.NDArray[np.float32]],
) -> npt.NDArray[np.float32]:
    """The defined similarity (module docstring) of each pair i: query ``rows[i]`` and the stored
    vector ``vectors_of(start, stop)[i - start]`` gives, computed in pieces of bounded size. With
    `row_similarities`, the one place the definition is computed, for `CosineIndex` and every
    vector index's store."""
    result = np.empty(n_pairs, dtype=np.float32)
    step = max(1, _EXACT_AREA // max(1, unit_queries.shape[1]))
    for start in range(0, n_pairs, step):
        stop = min(start + step, n_pairs)
        queries = np.take(unit_queries, rows[start:stop], axis=0)
        result[start:stop] = np.einsum("pd,pd->p", vectors_of(start, stop), queries, dtype=np.float64)
    return result


def descending_key(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    """uint32 keys whose ascending order is the descending order of float32 ``values`` (no NaN;
    -0.0 and 0.0 differ: add 0.0 first to merge them)."""
    bits = (-values).view(np.uint32)
    key: npt.NDArray[np.uint32] = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(1 << 31))
    return key


def row_similarities(
    unit_queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The defined similarity of query i and each of its m stored vectors ``vectors[i]``, (n, m)
    for (n, m, dim) vectors: the same numbers as `pair_similarities` (the same float64 sums of
    products, in numpy's einsum order), with no gathered copy of the queries."""
    result: npt.NDArray[np.float32] = np.einsum("qmd,qd->qm", vectors, unit_queries, dtype=np.float64).astype(
        np.float32
    )
    return result


class CosineIndex(SearcherBase):
    """Exact cosine kNN over L2-normalised float32 vectors of ``dim`` dimensions; ties by id."""

    score_name = "cosine"

    def __init__(self, dim: int) -> None:
        self.dim = check_dim(dim)
        self.last_candidates = np.zeros(0, dtype=np.int64)
        # Bound of |float32 dot product - exact| for unit vectors, doubled (see the module doc).
        self._eps = float(4 * (self.dim + 4) * np.finfo(np.float32).eps / 2)
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, self.dim), dtype=np.float32)

    def __repr__(self) -> str:
        return f"CosineIndex(dim={self.dim}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return len(self._ids)

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The ids in the index, ascending (a copy)."""
        return self._ids.copy()

    def vectors(self) -> npt.NDArray[np.float32]:
        """The stored unit vectors, in the order of `ids` (a copy)."""
        return self._vectors.copy()

    def reset(self) -> None:
        """Remove every vector."""
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, self.dim), dtype=np.float32)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add (n, dim) vectors under distinct new ids (>= 0); they are stored L2-normalised."""
        unit = normalise(vectors, self.dim)
        new_ids = check_ids(ids, len(unit))
        merged, order = merge_sorted_ids(self._ids, new_ids)
        stacked = np.concatenate([self._vectors, unit])
        self._ids, self._vectors = merged, stacked if order is None else stacked[order]

    # --- search --------------------------------------------------------------------------------

    def empty_error(self) -> SemretError:
        return SemretError("the cosine index is empty: add vectors before searching")

    def _search(
        self, queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k most similar vectors of each query: (similarities float32, ids int64), (queries, k)."""
        unit = normalise(queries, self.dim, "queries")
        self.last_candidates = np.full(len(unit), self.ntotal, dtype=np.int64)
        n, kk = self.ntotal, min(k, self.ntotal)
        rows_parts, positions_parts = [], []
        block = max(1, min(256, _PRODUCT_AREA // n))
        product = np.empty((min(block, len(unit)), n), dtype=np.float32)
        selected = np.empty_like(product)
        mask = np.empty(product.shape, dtype=np.bool_)
        for start in range(0, len(unit), block):
            stop = min(start + block, len(unit))
            approx = product[: stop - start]
            np.matmul(unit[start:stop], self._vectors.T, out=approx)
            if n > kk:
                kth = selected[: stop - start]
                np.copyto(kth, approx)
                kth.partition(n - kk, axis=1)
                threshold = kth[:, n - kk] - np.float32(self._eps)
                candidates = mask[: stop - start]
                np.greater_equal(approx, threshold[:, None], out=candidates)
                rows, positions = np.divmod(np.flatnonzero(candidates), n)
            else:
                rows, positions = np.divmod(np.arange(approx.size, dtype=np.int64), n)
            rows_parts.append(rows + start)
            positions_parts.append(positions)
        rows = np.concatenate(rows_parts) if rows_parts else np.empty(0, dtype=np.int64)
        positions = np.concatenate(positions_parts) if positions_parts else np.empty(0, dtype=np.int64)
        return self._top_k(unit, rows, positions, k)

    def search_subset(
        self, queries: npt.ArrayLike, candidate_ids: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Re-rank given candidates: per query, the k most similar of its row of ``candidate_ids``.

        ``candidate_ids`` is (queries, m); -1 entries are ignored (padding). Unknown ids and ids
        repeated within a row are errors. Rows with fewer than k candidates are padded.
        """
        check_k(k)
        self._check_not_empty()
        candidates = np.asarray(candidate_ids)
        if candidates.ndim != 2 or candidates.dtype.kind not in "iu":
            raise SemretError(f"candidate ids must be a 2-d integer array, got shape {candidates.shape}")
        candidates = candidates.astype(np.int64)
        given = candidates != NO_ID
        at = np.searchsorted(self._ids, candidates)
        known = given & (at < self.ntotal)
        known[known] = self._ids[at[known]] == candidates[known]
        if (given & ~known).any():
            unknown = np.unique(candidates[given & ~known])
            raise SemretError(f"candidate ids not in the index: {unknown[:5].tolist()}")
        return self.search_subset_positions(queries, np.where(given, at, NO_ID), k)

    def search_subset_positions(
        self, queries: npt.ArrayLike, candidate_positions: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """As `search_subset`, with positions in `ids` (0..ntotal-1, -1 = none) instead of ids."""
        self._check_not_empty()
        k = min(check_k(k), self.ntotal)
        unit = normalise(queries, self.dim, "queries")
        positions = np.asarray(candidate_positions)
        if positions.ndim != 2 or positions.dtype.kind not in "iu" or len(positions) != len(unit):
            raise SemretError(
                f"candidates must be a 2-d integer array with one row per query ({len(unit)}), "
                f"got shape {positions.shape}"
            )
        positions = positions.astype(np.int64)
        if positions.size and (int(positions.max()) >= self.ntotal or int(positions.min()) < NO_ID):
            raise SemretError(f"candidate positions must be in [-1, {self.ntotal})")
        ordered = np.sort(positions, axis=1)
        if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != NO_ID)):
            raise SemretError("a query's candidates contain the same id twice")
        rows, columns = np.nonzero(ordered != NO_ID)
        return self._top_k(unit, rows.astype(np.int64), ordered[rows, columns], k)

    def rank_pairs(
        self,
        unit_queries: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
        k: int,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Re-rank flat candidate pairs: candidate ``positions[i]`` belongs to query ``rows[i]``
        (unit queries; each pair at most once). The k best per query, padded, ties by id."""
        order = np.lexsort((positions, rows))
        return self._top_k(unit_queries, rows[order], positions[order], min(check_k(k), max(1, self.ntotal)))

    # --- helpers -------------------------------------------------------------------------------

    def similarities(
        self, unit_queries: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The defined similarity of query ``rows[i]`` and stored vector ``positions[i]``, per pair."""
        return pair_similarities(
            unit_queries, rows, len(positions), lambda s, e: np.take(self._vectors, positions[s:e], axis=0)
        )

    def _top_k(
        self,
        unit_queries: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
        k: int,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Per query, the k best (query, position) pairs by (similarity desc, position asc), padded.

        The pairs must come sorted by (row, position).
        """
        n_queries = len(unit_queries)
        scores = np.full((n_queries, k), MISSING_SIMILARITY, dtype=np.float32)
        ids = np.full((n_queries, k), NO_ID, dtype=np.int64)
        if len(rows) == 0:
            return scores, ids
        found = self.similarities(unit_queries, rows, positions) + np.float32(0)  # -0.0 -> 0.0
        # One stable sort by (row, similarity descending) keeps the (row, position) input order
        # among equal similarities: ties go by position, that is by id.
        order = np.argsort((rows.astype(np.uint64) << np.uint64(32)) | descending_key(found), kind="stable")
        rows, found, positions = rows[order], found[order], positions[order]
        counts = np.bincount(rows, minlength=n_queries)
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(rows)) - np.repeat(starts, counts)
        keep = rank < k
        scores[rows[keep], rank[keep]] = found[keep]
        ids[rows[keep], rank[keep]] = self._ids[positions[keep]]
        return scores, ids

    def _check_not_empty(self) -> None:
        if self.ntotal == 0:
            raise SemretError("the cosine index is empty: add vectors before searching")
