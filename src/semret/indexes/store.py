"""Where a vector index keeps its vectors, and the one exact re-ranker every index shares.

`FlatStore` keeps the unit vectors as one C-contiguous float32 array sorted by id, so that a
vector's *position* (its rank among the ids) is all an index needs to hand around: bucket tables
and faiss indexes hold positions, and one numpy gather maps positions to ids. Kinds whose engine
already holds the vectors (the k-means IVF) keep them there instead and gather from it
(`VectorStore.gather`), so a vector is never held twice.

`rank_pairs` is the re-ranker: the defined cosine similarity of (query, position) pairs, then
each query's k best by (similarity descending, id ascending), padded. The similarity is

    float32( sum over j of float64(q_j) * float64(x_j) )

on the stored float32 unit vectors (as `semret.core.cosine.CosineIndex` defines it), so every
index scores a pair identically, however it found it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

from semret.core.cosine import descending_key, pair_similarities, row_similarities
from semret.core.search import MISSING_SCORE, NO_ID
from semret.core.validation import check_absent, check_ids
from semret.errors import SemretError

__all__ = ["Added", "FlatStore", "Slots", "VectorStore", "similarity_error_bound"]

#: Float32 vector elements `VectorStore.rank_rows` gathers at once.
GATHER_AREA = 1 << 20

#: What `VectorStore.add` tells: the positions of the new vectors, and where the old positions
#: moved (None when they stayed).
Added = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]


def similarity_error_bound(dim: int) -> float:
    """4 (d + 4) u (u = float32's unit roundoff, half its eps): twice a bound of |an engine's
    float32 dot product of unit vectors - the defined similarity|, which is the float32 dot
    product's error (any summation order, FMA or not: gamma_d = d u / (1 - d u) <= (d + 4) u)
    plus the defined similarity's own rounding to float32 (u), with slack. The candidate test
    needs twice that bound: a proposal more than this below the k-th cannot outscore it."""
    return float(4 * (dim + 4) * np.finfo(np.float32).eps / 2)


class VectorStore(ABC):
    """The unit vectors of an index, by position (0..ntotal-1, ascending id order)."""

    #: Whether `add` should get large adds a block at a time (the store copies them elsewhere).
    takes_blocks: bool = False

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)

    @property
    def ntotal(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The ids, ascending (position order); a view: do not modify."""
        return self._ids

    def positions_of(self, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The positions of ids; -1 where an id is not stored."""
        wanted = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(self._ids, wanted)
        found = at < self.ntotal
        found[found] = self._ids[at[found]] == wanted[found]
        return np.where(found, at, NO_ID)

    def merge(self, ids: npt.ArrayLike, n: int) -> Added:
        """Take n new ids: (the positions they get, the new position of every old position or None
        when the old positions stay, as when the new ids all come after the old ones)."""
        new_ids = check_ids(ids, n)
        check_absent(self._ids, new_ids)
        old = self.ntotal
        merged = np.concatenate([self._ids, new_ids])
        ascending = len(new_ids) < 2 or bool(np.all(new_ids[1:] > new_ids[:-1]))
        if ascending and (not old or not len(new_ids) or new_ids[0] > self._ids[-1]):
            self._ids = merged
            return np.arange(old, old + n, dtype=np.int64), None
        order = np.argsort(merged, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order), dtype=np.int64)
        self._ids = merged[order]
        return rank[old:], (rank[:old] if old else None)

    @abstractmethod
    def add(self, ids: npt.ArrayLike, unit: npt.NDArray[np.float32]) -> Added:
        """Store unit vectors under new ids: as `merge`."""

    @abstractmethod
    def gather(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The (len(positions), dim) vectors at the positions."""

    def vectors(self) -> npt.NDArray[np.float32]:
        """All vectors in position order (a copy)."""
        return self.gather(np.arange(self.ntotal, dtype=np.int64))

    def similarities(
        self,
        unit_queries: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """The defined similarity of query ``rows[i]`` and the vector at ``positions[i]``, per pair
        (`semret.core.cosine.pair_similarities`)."""
        return pair_similarities(unit_queries, rows, len(rows), lambda s, e: self.gather(positions[s:e]))

    def rank_pairs(
        self,
        unit_queries: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
        k: int,
        *,
        sorted_pairs: bool = False,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k best of flat (query row, position) pairs per query (each pair at most once), by
        (similarity desc, id asc), padded with -inf / -1. ``sorted_pairs``: the pairs already come
        sorted by (row, position), which saves a sort."""
        n_queries = len(unit_queries)
        scores = np.full((n_queries, k), MISSING_SCORE, dtype=np.float32)
        ids = np.full((n_queries, k), NO_ID, dtype=np.int64)
        if len(rows) == 0:
            return scores, ids
        found = self.similarities(unit_queries, rows, positions) + np.float32(0)  # -0.0 -> 0.0
        # One sort by (row, similarity descending, position): positions are in id order.
        key = (rows.astype(np.uint64) << np.uint64(32)) | descending_key(found)
        order = np.argsort(key, kind="stable") if sorted_pairs else np.lexsort((positions, key))
        rows, found, positions = rows[order], found[order], positions[order]
        counts = np.bincount(rows, minlength=n_queries)
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(rows)) - np.repeat(starts, counts)
        keep = rank < k
        scores[rows[keep], rank[keep]] = found[keep]
        ids[rows[keep], rank[keep]] = self._ids[positions[keep]]
        return scores, ids

    def rank_rows(
        self, unit_queries: npt.NDArray[np.float32], positions: npt.NDArray[np.int64], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """As `rank_pairs` for a (queries, m) array of candidate positions per query (-1 = none,
        no repeats in a row): gathers a block of rows at a time, then sorts each row by
        (similarity desc, id asc), except rows already in that order (as an engine's proposals
        mostly are: strictly descending)."""
        n_queries, m = positions.shape
        valid = positions >= 0
        safe = np.where(valid, positions, 0)
        found = np.empty((n_queries, m), dtype=np.float32)
        step = max(1, GATHER_AREA // max(1, m * self.dim))
        for start in range(0, n_queries, step):
            stop = min(start + step, n_queries)
            vectors = self.gather(safe[start:stop].ravel()).reshape(stop - start, m, self.dim)
            found[start:stop] = row_similarities(unit_queries[start:stop], vectors)
        found += np.float32(0)  # -0.0 -> 0.0
        in_order = valid.all(axis=1) & (found[:, :-1] > found[:, 1:]).all(axis=1)
        scores = found[:, :k].copy()
        best = positions[:, :k].copy()
        unsorted = np.flatnonzero(~in_order)
        if len(unsorted):
            part, part_valid = found[unsorted], valid[unsorted]
            key = (descending_key(part).astype(np.uint64) << np.uint64(32)) | safe[unsorted].astype(
                np.uint64
            )  # positions are in id order
            key[~part_valid] = np.iinfo(np.uint64).max
            order = np.argsort(key, axis=1)[:, :k]
            scores[unsorted] = np.take_along_axis(part, order, axis=1)
            best[unsorted] = np.take_along_axis(positions[unsorted], order, axis=1)
        missing = best < 0
        scores[missing] = MISSING_SCORE
        ids = np.where(missing, NO_ID, self._ids[np.maximum(best, 0)])
        if ids.shape[1] < k:  # fewer proposals than k: pad
            pad = k - ids.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=MISSING_SCORE)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=NO_ID)
        return np.ascontiguousarray(scores, dtype=np.float32), ids


class FlatStore(VectorStore):
    """Unit vectors in one float32 array in position (id) order."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._vectors = np.empty((0, dim), dtype=np.float32)

    @property
    def array(self) -> npt.NDArray[np.float32]:
        """The (ntotal, dim) C-contiguous float32 array itself (for engines such as faiss.knn)."""
        return self._vectors

    def add(self, ids: npt.ArrayLike, unit: npt.NDArray[np.float32]) -> Added:
        if unit.shape[1:] != (self.dim,):
            raise SemretError(f"vectors must be (n, {self.dim}), got {unit.shape}")
        old = self._vectors
        new_positions, moved = self.merge(ids, len(unit))
        appended = len(new_positions) == 0 or (moved is None and new_positions[0] == len(old))
        if appended and not len(old):  # the first add, ids ascending: no copy
            self._vectors = np.ascontiguousarray(unit, dtype=np.float32)
        elif appended:
            self._vectors = np.concatenate([old, unit])
        else:
            self._vectors = np.empty((len(old) + len(unit), self.dim), dtype=np.float32)
            if moved is not None:
                self._vectors[moved] = old
            self._vectors[new_positions] = unit
        return new_positions, moved

    def gather(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.take(self._vectors, positions, axis=0)

    def vectors(self) -> npt.NDArray[np.float32]:
        return self._vectors.copy()


class Slots:
    """Which store position each entry of an engine that numbers vectors by insertion (faiss HNSW,
    binary flat) holds: entry i is the i-th vector added to the engine."""

    def __init__(self) -> None:
        self.positions = np.empty(0, dtype=np.int64)

    def append(self, positions: npt.NDArray[np.int64]) -> None:
        self.positions = np.concatenate([self.positions, positions.astype(np.int64)])

    def renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self.positions = moved[self.positions]

    def to_positions(self, entries: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Store positions of engine entries (-1 stays -1)."""
        entries = entries.astype(np.int64, copy=False)
        return np.where(entries >= 0, self.positions[np.maximum(entries, 0)], NO_ID)
