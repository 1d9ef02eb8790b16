"""Random-hyperplane LSH (Charikar's SimHash) with optional multi-probe.

Hashing (Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002): each
of the L tables has K hyperplanes r drawn from N(0, I) in the vector space; hash bit j of a unit
vector x in table t is ``r_tj . x >= 0``. Two vectors at angle theta agree on a bit with
probability 1 - theta / pi, so similar vectors tend to share a bucket (all K bits equal). The
published setting used one table; L >= 1 tables are offered (a vector is a candidate when it
shares the query's bucket in at least one table).

Multi-probe (after Lv et al., "Multi-probe LSH: efficient indexing for high-dimensional similarity
search", VLDB 2007), exactly: with ``n_probes = P > 0``, in every table the query also probes the
P buckets obtained by flipping ONE of its P bits of smallest margin ``|r_tj . q|`` (the bits most
likely to differ for a near neighbour), one bit at a time; so 1 + P buckets per table, and no
multi-bit perturbations. The candidates (the distinct ids in all probed buckets) are ranked by
cosine in `VectorIndex` (shared re-ranker); the buckets live in the shared `BucketTables`.

Projections are computed in float64 from the stored float32 unit vectors; the hyperplanes are
saved with the index, so a loaded index hashes exactly as the one saved, whatever numpy's RNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_int
from semret.errors import SemretError
from semret.indexes.base import VectorIndex
from semret.indexes.buckets import MAX_BITS, BucketTables, bucket_keys

__all__ = ["RandomHyperplaneLSH"]

#: Float64 projection values computed at once (vectors x L*K), to bound memory on large adds.
_PROJECTION_AREA = 1 << 22


class RandomHyperplaneLSH(VectorIndex):
    """SimHash LSH: ``n_tables`` tables of ``n_bits`` sign bits of Gaussian projections.

    ``n_probes`` extra buckets per table are probed by single-bit flips of the lowest-margin bits
    (0 = plain LSH). ``seed`` draws the hyperplanes (numpy ``default_rng``) at construction, so no
    `fit` is needed.
    """

    kind = "lsh"
    needs_fit = False

    def __init__(self, dim: int, n_bits: int = 16, n_tables: int = 1, n_probes: int = 0, seed: int = 0) -> None:
        super().__init__(dim)
        self.n_bits = check_int("n_bits", n_bits, 1, MAX_BITS)
        self.n_tables = check_int("n_tables", n_tables, 1)
        self.n_probes = check_int("n_probes", n_probes, 0, self.n_bits)
        self.seed = check_int("seed", seed, 0)
        rng = np.random.default_rng(self.seed)
        #: (L, K, dim) Gaussian hyperplanes (normals), float64, drawn from ``seed``.
        self.hyperplanes_: npt.NDArray[np.float64] = rng.standard_normal((self.n_tables, self.n_bits, self.dim))
        self.tables = BucketTables(self.n_tables)

    def project(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """(n, L, K) projections ``r_tj . x`` of unit vectors (float64); bit = projection >= 0."""
        planes = self.hyperplanes_.reshape(-1, self.dim).T
        return (unit.astype(np.float64) @ planes).reshape(len(unit), self.n_tables, self.n_bits)

    def _step(self) -> int:
        """Vectors projected at once."""
        return max(1, _PROJECTION_AREA // (self.n_tables * self.n_bits))

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        step = self._step()
        keys = [bucket_keys(self.project(vectors[s : s + step]) >= 0) for s in range(0, len(vectors), step)]
        self.tables.add(np.concatenate(keys) if keys else np.zeros((0, self.n_tables), np.uint64), positions)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self.tables.renumber(moved)

    def probes(self, unit_queries: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
        """(queries, L, 1 + P) bucket keys probed: the query's own bucket first, then the buckets
        with one of its P lowest-margin bits flipped, the lowest margin first."""
        parts = []
        step = self._step()
        for start in range(0, len(unit_queries), step):
            projections = self.project(unit_queries[start : start + step])
            own = bucket_keys(projections >= 0)[:, :, None]
            if self.n_probes == 0:
                parts.append(own)
                continue
            # Stable sort: among equal margins the lower bit is flipped first (deterministic).
            flipped = np.argsort(np.abs(projections), axis=2, kind="stable")[:, :, : self.n_probes]
            masks = np.left_shift(np.uint64(1), flipped.astype(np.uint64))
            parts.append(np.concatenate([own, own ^ masks], axis=2))
        return np.concatenate(parts) if parts else np.zeros((0, self.n_tables, 1 + self.n_probes), np.uint64)

    def _candidate_pairs(self, queries: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        # An id found in several tables (or probes) is scored once: `last_candidates` counts
        # distinct vectors.
        return self.tables.lookup_pairs(self.probes(queries))

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"hyperplanes": self.hyperplanes_}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        planes = state.get("hyperplanes")
        expected = (self.n_tables, self.n_bits, self.dim)
        if planes is None or planes.shape != expected or planes.dtype.kind != "f" or not np.isfinite(planes).all():
            got = "none" if planes is None else f"{planes.dtype} {planes.shape}"
            raise SemretError(f"corrupt lsh index file: expected {expected} finite hyperplanes, got {got}")
        self.hyperplanes_ = planes.astype(np.float64)
