"""Exact cosine kNN: every vector is a candidate. The ground truth the other indexes are judged by.

The scan proposes each query's k + 4 best by float32 inner product on the store's own array
(no copy of the vectors): for batches of at least `FAISS_BATCH` queries faiss' brute force
(``faiss.knn``: blocked BLAS and heaps, the faster there), for smaller ones one numpy matrix
product per block of queries and a partial sort (faster for few queries: faiss' BLAS blocks are
then too thin; measured in docs/benchmarks.md). The shared refinement of `VectorIndex` then
re-scores the proposals with semret's defined similarity and checks that no vector of the exact
top k was left out (see `semret.indexes.base`), so the result is the exact top k, ties by id, as
`semret.core.cosine.CosineIndex` gives it, whichever scan ran.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

from semret.indexes.base import Proposals, VectorIndex
from semret.indexes.store import FlatStore

#: Batches of at least this many queries are scanned by faiss, smaller ones by numpy.
FAISS_BATCH = 1000
#: Query x vector products computed at once by the numpy scan (float32 each).
_PRODUCT_AREA = 1 << 25


def _numpy_top(
    queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Each query's k largest inner products with the vectors, largest first: (scores, positions).
    Per block of queries: one matrix product, each row's k-th largest by `np.partition` (on a
    copy), the few entries at least as large, sorted."""
    n = len(vectors)
    scores = np.empty((len(queries), k), dtype=np.float32)
    positions = np.empty((len(queries), k), dtype=np.int64)
    step = max(1, min(len(queries), _PRODUCT_AREA // max(1, n)))
    # Buffers made once: a fresh block of this size per step costs its page faults every time.
    buffer = np.empty((step, n), dtype=np.float32)
    spare = np.empty_like(buffer)
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        product = buffer[: len(block)]
        np.matmul(block, vectors.T, out=product)
        if k < n:
            selected = spare[: len(block)]
            np.copyto(selected, product)
            selected.partition(n - k, axis=1)
            kth = selected[:, n - k]
        else:
            kth = product.min(axis=1)
        rows, columns = np.nonzero(product >= kth[:, None])
        values = product[rows, columns]
        order = np.lexsort((columns, -values, rows))
        rows, columns, values = rows[order], columns[order], values[order]
        counts = np.bincount(rows, minlength=len(product))
        rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < k
        scores[start + rows[keep], rank[keep]] = values[keep]
        positions[start + rows[keep], rank[keep]] = columns[keep]
    return scores, positions


class ExactIndex(VectorIndex):
    """Brute-force cosine search on faiss, refined to the exact top k (ties by id)."""

    kind = "exact"
    uses_engine = True

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        assert isinstance(self.store, FlatStore)
        if len(queries) >= FAISS_BATCH:
            scores, found = faiss.knn(queries, self.store.array, k, metric=faiss.METRIC_INNER_PRODUCT)
            positions = found.astype(np.int64, copy=False)
        else:
            scores, positions = _numpy_top(queries, self.store.array, k)
        return scores, positions, np.full(len(queries), self.ntotal, dtype=np.int64)
