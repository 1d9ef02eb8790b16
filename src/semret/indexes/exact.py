"""Exact cosine kNN: every vector is a candidate. The ground truth the other indexes are judged by."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from semret.indexes.base import VectorIndex


class ExactIndex(VectorIndex):
    """Brute-force cosine search: a batched matrix product and a partial sort (`CosineIndex`)."""

    kind = "exact"

    def _candidates(self, queries: npt.NDArray[np.float32]) -> list[npt.NDArray[np.int64]]:
        return [self._sorted_ids] * len(queries)

    def _search(
        self, queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k most similar vectors of each query: (cosine similarities, ids), ties by id."""
        scores, ids = self.store.search(queries, k)
        self.last_candidates = np.full(len(scores), self.ntotal, dtype=np.int64)
        return scores, ids
