"""`HammingIndex`: exact Hamming k-nearest-neighbour search over packed binary codes.

FAISS-like: ``add(ids, packed_codes)``, ``search(packed_queries, k) -> (distances, ids)``, batch
first, numpy in and out. Codes are packed as `semret.core.codes.pack_codes` packs them.

Tie order. Results are sorted by (distance, id): among codes at the same distance the smallest
ids come first, also at the k-th place, so the result is fully deterministic.
`faiss.IndexBinaryFlat` (heap search, its default) sorts by (distance, position of insertion): its
ids are insertion positions, and among equal distances its max-heap keeps and returns the smaller
positions first. So the two agree exactly when the ids are added in ascending order (or are the
insertion positions), and otherwise may differ in which of the codes at equal distances they
return and in what order; the distances per row are always the same multiset. (faiss' tie order
is a property of its implementation, not a documented guarantee; its ``use_heap = False``
counting variant and ``IndexBinaryIDMap`` may order ties differently.)

How it is computed: pure numpy, compared with ``faiss.IndexBinaryFlat`` side by side in
docs/benchmarks.md (``benchmarks/hamming_search.py``); it gives the id tie order by construction
rather than through faiss' internals. The index keeps its codes sorted by id, as uint64 words (a
48-bit code is one word, zero-padded), so that position order is id order. Queries go in blocks
of B; the database in chunks of C codes. For each (block x chunk): XOR by broadcasting and
`np.bitwise_count` give a (B, C) array of small integer distances. In the first chunk the k-th
smallest distance t of each query is found by a bisection on counts (distances are integers in
0..n_bits), and the codes at distance <= t are kept as candidates; from then on each query keeps a
histogram of its candidates' distances and only accepts codes strictly closer than its current
k-th distance (a later code at an equal distance has a larger id and so loses the tie). A final
sort of the few candidates by (query, distance, position) gives the exact top k. Memory is bounded
by the block x chunk size; blocks run on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.core.codes import check_packed, code_bytes
from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.core.validation import check_ids, check_k, check_optional_int, merge_sorted_ids
from semret.errors import SemretError

__all__ = ["MISSING_DISTANCE", "NO_ID", "HammingIndex"]
#: Distance of a padding result (as faiss: the largest int32).
MISSING_DISTANCE = int(np.iinfo(np.int32).max)

_FORMAT = "semret-hamming-index"
_VERSION = 1
#: Queries x database codes compared at once (the XOR buffer is 8 bytes each).
_BLOCK_AREA = 1 << 19
#: Database codes per chunk (at least k are taken when k is larger).
_CHUNK = 1 << 14


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def hamming_distances(scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
    """Hamming distances from search-contract scores (minus the distances; padding -inf -> 2**31 - 1),
    for every Hamming searcher, in memory or in a database."""
    array = np.asarray(scores)
    return np.where(np.isfinite(array), -array, MISSING_DISTANCE).astype(np.int32)


class HammingIndex(SearcherBase):
    """Exact Hamming top-k over packed codes of ``n_bits`` bits; ties by id (ascending).

    `search` follows semret's search contract: scores are minus the Hamming distance (float32,
    higher is better), `to_distance` turns them back; `search_distances` gives the int32
    distances themselves. ``n_threads`` query blocks are searched in parallel (default: the CPUs
    this process may use).
    """

    score_name = "-hamming"

    def __init__(self, n_bits: int, n_threads: int | None = None) -> None:
        self.code_size = code_bytes(n_bits)
        self.n_bits = int(n_bits)
        self.n_threads = check_optional_int("n_threads", n_threads, 1)
        self.last_candidates = np.zeros(0, dtype=np.int64)
        self._n_words = (self.code_size + 7) // 8
        self._ids = np.empty(0, dtype=np.int64)
        self._words = np.empty((self._n_words, 0), dtype=np.uint64)

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return len(self._ids)

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The ids in the index, ascending (a copy)."""
        return self._ids.copy()

    def reset(self) -> None:
        """Remove every code."""
        self._ids = np.empty(0, dtype=np.int64)
        self._words = np.empty((self._n_words, 0), dtype=np.uint64)

    def add(self, ids: npt.ArrayLike, packed_codes: npt.ArrayLike) -> None:
        """Add codes (an (n, ceil(n_bits / 8)) uint8 array) under distinct new ids (>= 0)."""
        packed = check_packed(packed_codes, self.n_bits)
        new_ids = check_ids(ids, len(packed))
        merged, order = merge_sorted_ids(self._ids, new_ids)
        words = np.concatenate([self._words, self._to_words(packed)], axis=1)
        if order is not None:
            words = words[:, order]
        self._ids, self._words = merged, np.ascontiguousarray(words)

    def codes(self) -> npt.NDArray[np.uint8]:
        """The packed codes, in the order of `ids`."""
        as_bytes = np.ascontiguousarray(self._words.T).view(np.uint8)
        return np.ascontiguousarray(as_bytes[:, : self.code_size])

    # --- search --------------------------------------------------------------------------------

    def empty_error(self) -> SemretError:
        return SemretError("the Hamming index is empty: add codes before searching")

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
        return hamming_distances(scores)

    def _search(
        self, packed_queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        distances, ids = self.search_distances(packed_queries, k)
        scores = np.where(ids == NO_ID, MISSING_SCORE, -distances.astype(np.float32)).astype(np.float32)
        return scores, ids

    def search_distances(
        self, packed_queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """The k nearest codes of each query: (distances int32, ids int64), each (queries, min(k, ntotal)).

        Sorted by (distance, id). Rows are padded with distance 2**31 - 1 and id -1 when the
        index holds fewer than k codes.
        """
        distances, positions = self.search_positions(packed_queries, k)
        ids = np.full(positions.shape, NO_ID, dtype=np.int64)
        found = positions >= 0
        ids[found] = self._ids[positions[found]]
        return distances, ids

    def search_positions(
        self, packed_queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """As `search`, but with positions in `ids` (ascending id order) instead of ids."""
        queries = check_packed(packed_queries, self.n_bits, "queries")
        if self.ntotal == 0:
            raise self.empty_error()
        k = min(check_k(k), self.ntotal)
        n_queries = len(queries)
        self.last_candidates = np.full(n_queries, self.ntotal, dtype=np.int64)
        distances = np.full((n_queries, k), MISSING_DISTANCE, dtype=np.int32)
        positions = np.full((n_queries, k), NO_ID, dtype=np.int64)
        if n_queries == 0:
            return distances, positions
        query_words = self._to_words(queries)
        kk = min(k, self.ntotal)
        chunk = min(self.ntotal, max(_CHUNK, kk))
        threads = min(self.n_threads or default_threads(), n_queries)
        block = max(1, min(_BLOCK_AREA // chunk, -(-n_queries // threads)))
        starts = list(range(0, n_queries, block))

        def run(share: list[int]) -> None:
            buffers = _Buffers(block * chunk, self.n_bits)
            for start in share:
                stop = min(start + block, n_queries)
                d, p = self._search_block(query_words[:, start:stop], kk, chunk, buffers)
                distances[start:stop, :kk], positions[start:stop, :kk] = d, p

        shares = [starts[i::threads] for i in range(threads)]
        if threads == 1 or len(starts) == 1:
            run(starts)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for future in [pool.submit(run, share) for share in shares if share]:
                    future.result()
        return distances, positions

    def _search_block(
        self, query_words: npt.NDArray[np.uint64], kk: int, chunk: int, buffers: _Buffers
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Exact top-kk (kk <= ntotal) of one block of queries, sorted by (distance, position)."""
        n, n_bits = self.ntotal, self.n_bits
        n_rows = query_words.shape[1]
        bins = n_bits + 1
        histogram = np.zeros(n_rows * bins, dtype=np.int64)
        pool: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        pooled = 0
        limit = np.empty((n_rows, 1), dtype=buffers.distance_dtype)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            d = buffers.distances(self._words, query_words, start, stop)
            mask = buffers.mask[: d.size].reshape(d.shape)
            if start == 0:
                # The kk-th smallest distance of each row in this chunk (kk <= chunk size): the
                # codes at distance <= it are candidates, and every row then has >= kk of them.
                np.less_equal(d, _kth_smallest(d, kk, n_bits, mask)[:, None], out=mask)
            else:
                np.less(d, limit, out=mask)
            flat = np.flatnonzero(mask)
            if len(flat) == 0:
                continue
            rows, columns = np.divmod(flat, stop - start)
            found = d.ravel()[flat].astype(np.int64)
            pool.append((rows, found, columns + start))
            pooled += len(flat)
            histogram += np.bincount(rows * bins + found, minlength=n_rows * bins)
            # The current kk-th distance per row: later codes must be strictly closer to enter.
            reached = np.cumsum(histogram.reshape(n_rows, bins), axis=1) >= kk
            limit[:, 0] = np.argmax(reached, axis=1)
            if pooled > max(4 * n_rows * kk, _BLOCK_AREA):
                pool = [_select(pool, kk, n_bits, n)]
                pooled = len(pool[0][0])
        rows, found, positions = _select(pool, kk, n_bits, n)
        return found.astype(np.int32).reshape(n_rows, kk), positions.reshape(n_rows, kk)

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the index to an ``.npz`` file (ids and packed codes)."""
        np.savez(
            Path(path),
            format=np.array(_FORMAT),
            version=np.array(_VERSION),
            n_bits=np.array(self.n_bits),
            ids=self._ids,
            codes=self.codes(),
        )

    @classmethod
    def load(cls, path: str | Path, n_threads: int | None = None) -> HammingIndex:
        """Read an index written by `save`."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                if str(data["format"]) != _FORMAT:
                    raise SemretError(f"{path} is not a semret Hamming index")
                if int(data["version"]) != _VERSION:
                    raise SemretError(f"{path}: unsupported Hamming index version {int(data['version'])}")
                n_bits, ids, codes = int(data["n_bits"]), data["ids"], data["codes"]
        except (OSError, KeyError, ValueError) as error:
            raise SemretError(f"cannot read a Hamming index from {path}: {error}") from error
        index = cls(n_bits, n_threads=n_threads)
        index.add(ids, codes)
        return index

    # --- helpers -------------------------------------------------------------------------------

    def _to_words(self, packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
        """Packed codes as (words, codes) uint64, zero-padded (any fixed byte order will do)."""
        padded = np.zeros((len(packed), 8 * self._n_words), dtype=np.uint8)
        padded[:, : self.code_size] = packed
        return np.ascontiguousarray(padded.view(np.uint64).T)


class _Buffers:
    """One thread's scratch arrays, for a block x chunk of ``area`` distances."""

    def __init__(self, area: int, n_bits: int) -> None:
        self.distance_dtype = np.uint8 if n_bits <= 255 else np.uint16
        self.xor = np.empty(area, dtype=np.uint64)
        self.distance = np.empty(area, dtype=self.distance_dtype)
        self.counts = np.empty(area, dtype=np.uint8) if n_bits > 64 else None
        self.mask = np.empty(area, dtype=np.bool_)

    def distances(
        self, words: npt.NDArray[np.uint64], query_words: npt.NDArray[np.uint64], start: int, stop: int
    ) -> npt.NDArray[Any]:
        """The (queries, stop - start) Hamming distances (uint8, or uint16 above 255 bits) to the
        codes ``start:stop``."""
        shape = (query_words.shape[1], stop - start)
        size = shape[0] * shape[1]
        xor = self.xor[:size].reshape(shape)
        distance = self.distance[:size].reshape(shape)
        for word in range(words.shape[0]):
            np.bitwise_xor(query_words[word][:, None], words[word][None, start:stop], out=xor)
            if word == 0:
                np.bitwise_count(xor, out=distance)
            else:
                assert self.counts is not None
                counts = self.counts[:size].reshape(shape)
                np.bitwise_count(xor, out=counts)
                np.add(distance, counts, out=distance)
        return distance


def _kth_smallest(d: npt.NDArray[Any], kk: int, n_bits: int, mask: npt.NDArray[np.bool_]) -> npt.NDArray[Any]:
    """Per row of small integers in [0, n_bits], the kk-th smallest (bisection on counts)."""
    low = np.zeros(d.shape[0], dtype=np.int64)
    count_dtype = np.uint16 if d.shape[1] <= np.iinfo(np.uint16).max else np.int64  # uint16 sums are fast
    high = np.full(d.shape[0], n_bits, dtype=np.int64)
    while True:
        open_rows = low < high
        if not open_rows.any():
            return high.astype(d.dtype)
        middle = (low + high) // 2
        np.less_equal(d, middle.astype(d.dtype)[:, None], out=mask)
        enough = mask.view(np.uint8).sum(axis=1, dtype=count_dtype) >= kk
        high = np.where(open_rows & enough, middle, high)
        low = np.where(open_rows & ~enough, middle + 1, low)


def _select(
    pool: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    kk: int,
    n_bits: int,
    n: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The first kk candidates of each row by (distance, position), rows in order (each has >= kk)."""
    rows = np.concatenate([p[0] for p in pool])
    found = np.concatenate([p[1] for p in pool])
    positions = np.concatenate([p[2] for p in pool])
    bins = n_bits + 1
    if (int(rows.max()) + 1) * bins * n < 2**62:  # one int64 key: sort it, then take it apart
        key = np.sort((rows * bins + found) * n + positions)
        row_found, positions = np.divmod(key, n)
        rows, found = np.divmod(row_found, bins)
    else:
        order = np.lexsort((positions, found, rows))
        rows, found, positions = rows[order], found[order], positions[order]
    counts = np.bincount(rows)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < kk
    return rows[keep], found[keep], positions[keep]
