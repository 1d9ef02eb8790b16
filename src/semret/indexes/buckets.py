"""Hash tables of buckets, shared by the LSH indexes: L tables, each mapping a bucket key (up to
64 hash bits as one unsigned integer) to the positions of the vectors hashed there (positions in
the index's `semret.indexes.store.VectorStore`, so that no id has to be looked up at search time).

Each table is kept as its keys sorted (with the positions alongside), so a lookup is two binary
searches per probed key, vectorised over all queries and probes, and gives flat (query, position)
pairs for the shared re-ranker.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

MAX_BITS = 64


def bucket_keys(bits: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
    """Keys of (..., K) hash bits (K <= 64): bit j of the key is hash bit j."""
    if bits.shape[-1] > MAX_BITS:
        raise SemretError(f"a bucket key holds at most {MAX_BITS} bits, got {bits.shape[-1]}")
    weights = np.left_shift(np.uint64(1), np.arange(bits.shape[-1], dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64)


class BucketTables:
    """L tables of buckets: `add` keys and positions, `lookup_pairs` the positions in the probed
    buckets; `renumber` when the store's positions move."""

    def __init__(self, n_tables: int) -> None:
        if n_tables < 1:
            raise SemretError(f"the number of tables must be at least 1, got {n_tables}")
        self.n_tables = n_tables
        self._keys = [np.zeros(0, dtype=np.uint64) for _ in range(n_tables)]
        self._ids = [np.zeros(0, dtype=np.int64) for _ in range(n_tables)]

    def add(self, keys: npt.NDArray[np.uint64], ids: npt.NDArray[np.int64]) -> None:
        """Put each id in its bucket of every table: ``keys`` is (n, L)."""
        if keys.shape != (len(ids), self.n_tables):
            raise SemretError(f"keys must be (ids, tables) = ({len(ids)}, {self.n_tables}), got {keys.shape}")
        for table in range(self.n_tables):
            merged_keys = np.concatenate([self._keys[table], keys[:, table]])
            merged_ids = np.concatenate([self._ids[table], ids])
            order = np.argsort(merged_keys, kind="stable")
            self._keys[table], self._ids[table] = merged_keys[order], merged_ids[order]

    def lookup_pairs(self, probes: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The distinct (query row, position) pairs of the probed buckets over all tables, sorted
        by (row, position). ``probes`` is (queries, L, P): P bucket keys probed per table (P = 1
        without multi-probe)."""
        if probes.ndim != 3 or probes.shape[1] != self.n_tables:
            raise SemretError(f"probes must be (queries, {self.n_tables}, probes), got {probes.shape}")
        span = np.int64(max(1, self.size()))
        keys_found = []
        for table in range(self.n_tables):
            keys = probes[:, table, :].ravel()
            low = np.searchsorted(self._keys[table], keys, side="left")
            high = np.searchsorted(self._keys[table], keys, side="right")
            counts = high - low
            offsets = np.repeat(low - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
            rows = np.repeat(np.arange(len(keys), dtype=np.int64) // probes.shape[2], counts)
            keys_found.append(rows * span + self._ids[table][offsets])
        pairs = np.unique(np.concatenate(keys_found)) if keys_found else np.zeros(0, dtype=np.int64)
        return pairs // span, pairs % span

    def size(self) -> int:
        """The number of entries of one table (every table holds every position once)."""
        return len(self._ids[0])

    def renumber(self, moved: npt.NDArray[np.int64]) -> None:
        """Replace every stored position p by ``moved[p]`` (the store's positions moved)."""
        self._ids = [moved[ids] for ids in self._ids]

    def bucket_sizes(self) -> list[npt.NDArray[np.int64]]:
        """Per table, the number of ids in each non-empty bucket (to judge how balanced they are)."""
        return [np.unique(keys, return_counts=True)[1] for keys in self._keys]
