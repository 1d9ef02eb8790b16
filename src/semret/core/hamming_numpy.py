"""`NumpyHammingKernel`: exact Hamming top-k in pure numpy, the reference for `HammingIndex`.

`semret.core.hamming.HammingIndex` searches with `faiss.IndexBinaryFlat`; this is the numpy kernel
it used before, kept as an independent reference (tests compare the two on many ties) and as the
"before" line of ``benchmarks/hamming_search.py``. Same results, same tie order: sorted by
(distance, position), positions being the order the codes were given in.

How it is computed. The codes are kept as uint64 words (a 48-bit code is one word, zero-padded).
Queries go in blocks of B; the database in chunks of C codes. For each (block x chunk): XOR by
broadcasting and `np.bitwise_count` give a (B, C) array of small integer distances. In the first
chunk the k-th smallest distance t of each query is found by a bisection on counts (distances are
integers in 0..n_bits), and the codes at distance <= t are kept as candidates; from then on each
query keeps a histogram of its candidates' distances and only accepts codes strictly closer than
its current k-th distance (a later code at an equal distance has a larger position and so loses
the tie). A final sort of the few candidates by (query, distance, position) gives the exact top
k. Memory is bounded by the block x chunk size; blocks run on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.core.codes import check_packed, code_bytes
from semret.core.hamming import default_threads
from semret.core.validation import check_k, check_optional_int

__all__ = ["NumpyHammingKernel", "to_words"]

#: Distance of a padding result (as faiss: the largest int32).
_MISSING_DISTANCE = int(np.iinfo(np.int32).max)
#: Queries x database codes compared at once (the XOR buffer is 8 bytes each).
_BLOCK_AREA = 1 << 19
#: Database codes per chunk (at least k are taken when k is larger).
_CHUNK = 1 << 14


def to_words(packed: npt.NDArray[np.uint8], n_words: int) -> npt.NDArray[np.uint64]:
    """Packed codes as (words, codes) uint64, zero-padded (any fixed byte order will do)."""
    padded = np.zeros((len(packed), 8 * n_words), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return np.ascontiguousarray(padded.view(np.uint64).T)


class NumpyHammingKernel:
    """Exact Hamming top-k over fixed packed codes of ``n_bits`` bits, in numpy; ties by position."""

    def __init__(self, packed_codes: npt.ArrayLike, n_bits: int, n_threads: int | None = None) -> None:
        codes = check_packed(packed_codes, n_bits)
        self.n_bits = int(n_bits)
        self.n_threads = check_optional_int("n_threads", n_threads, 1)
        self._n_words = (code_bytes(n_bits) + 7) // 8
        self._words = to_words(codes, self._n_words)

    @property
    def ntotal(self) -> int:
        """Number of codes."""
        return int(self._words.shape[1])

    def search_positions(
        self, packed_queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """The k nearest codes of each query: (distances int32, positions int64), each (queries,
        min(k, ntotal)), sorted by (distance, position)."""
        queries = check_packed(packed_queries, self.n_bits, "queries")
        kk = min(check_k(k), self.ntotal)
        n_queries = len(queries)
        distances = np.full((n_queries, kk), _MISSING_DISTANCE, dtype=np.int32)
        positions = np.full((n_queries, kk), -1, dtype=np.int64)
        if n_queries == 0 or kk == 0:
            return distances, positions
        query_words = to_words(queries, self._n_words)
        chunk = min(self.ntotal, max(_CHUNK, kk))
        threads = min(self.n_threads or default_threads(), n_queries)
        block = max(1, min(_BLOCK_AREA // chunk, -(-n_queries // threads)))
        starts = list(range(0, n_queries, block))

        def run(share: list[int]) -> None:
            buffers = _Buffers(block * chunk, self.n_bits)
            for start in share:
                stop = min(start + block, n_queries)
                d, p = self._search_block(query_words[:, start:stop], kk, chunk, buffers)
                distances[start:stop], positions[start:stop] = d, p

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
