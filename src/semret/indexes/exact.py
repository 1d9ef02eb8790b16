"""Exact cosine kNN: every vector is a candidate. The ground truth the other indexes are judged by.

The scan is faiss' brute-force inner product (``faiss.knn``, BLAS for batches, on the store's own
array: no copy of the vectors) proposing each query's k + margin best; the shared refinement of
`VectorIndex` then re-scores them with semret's defined similarity and checks that no vector of
the exact top k was left out (see `semret.indexes.base`), so the result is the exact top k, ties
by id, as `semret.core.cosine.CosineIndex` gives it.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

from semret.indexes.base import Proposals, VectorIndex
from semret.indexes.store import FlatStore


class ExactIndex(VectorIndex):
    """Brute-force cosine search on faiss, refined to the exact top k (ties by id)."""

    kind = "exact"
    uses_engine = True

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        assert isinstance(self.store, FlatStore)
        scores, positions = faiss.knn(queries, self.store.array, k, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, positions.astype(np.int64, copy=False), np.full(len(queries), self.ntotal, dtype=np.int64)
