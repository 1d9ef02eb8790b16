"""Random-hyperplane LSH as codes: sign bits ranked by Hamming distance, then refined by cosine.

The codes are Charikar's SimHash bits ("Similarity estimation techniques from rounding
algorithms", STOC 2002), as in `semret.indexes.lsh`, but instead of buckets every code is ranked
by its Hamming distance to the query's (faiss ``IndexBinaryFlat``, exact Hamming on packed codes),
and the ``k_factor * k`` nearest codes are re-scored by semret's defined cosine similarity, ties
by id. This is what faiss' ``IndexLSH`` wrapped in ``IndexRefineFlat`` (``k_factor``) does; with
many bits (256 for 128-d vectors) the Hamming order follows the angle closely, so a short refined
list reaches high recall, where buckets need many tables to.

The codes are kept in position (id) order, in faiss and in a copy of the packed codes (n_bits / 8
bytes a vector, for re-filing when ids arrive out of order): faiss keeps the first-inserted among
codes at equal distances, so the shortlist breaks Hamming ties by id, whatever order the vectors
were added in. ``last_candidates`` counts the vectors re-scored by cosine (every code is compared
by Hamming).
The hyperplanes are drawn from ``seed`` at construction and saved with the index.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.validation import check_int
from semret.errors import SemretError
from semret.indexes.base import Proposals, VectorIndex

__all__ = ["LSHCodesIndex"]

#: Vectors hashed at once.
_HASH_BLOCK = 1 << 15


class LSHCodesIndex(VectorIndex):
    """SimHash codes of ``n_bits`` (a multiple of 8) ranked by Hamming; ``k_factor * k`` re-scored."""

    kind = "lsh-codes"
    uses_engine = True
    engine_is_exhaustive = False

    def __init__(self, dim: int, n_bits: int = 256, k_factor: int = 10, seed: int = 0) -> None:
        super().__init__(dim)
        self.n_bits = check_int("n_bits", n_bits, 8, 1 << 16)
        if self.n_bits % 8:
            raise SemretError(f"n_bits must be a multiple of 8 (whole bytes of code), got {n_bits}")
        self.k_factor = check_int("k_factor", k_factor, 1)
        self.seed = check_int("seed", seed, 0)
        #: (n_bits, dim) Gaussian hyperplanes (float32), drawn from ``seed``.
        self.hyperplanes_ = np.random.default_rng(self.seed).standard_normal((self.n_bits, self.dim)).astype(np.float32)
        self._engine = faiss.IndexBinaryFlat(self.n_bits)
        self._packed = np.empty((0, self.n_bits // 8), dtype=np.uint8)
        self._moved: npt.NDArray[np.int64] | None = None

    def codes(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """(n, n_bits / 8) packed sign bits of unit vectors (bit j of a code: ``r_j . x >= 0``)."""
        out = np.empty((len(unit), self.n_bits // 8), dtype=np.uint8)
        for start in range(0, len(unit), _HASH_BLOCK):
            bits = unit[start : start + _HASH_BLOCK] @ self.hyperplanes_.T >= 0
            out[start : start + _HASH_BLOCK] = np.packbits(bits, axis=1, bitorder="little")
        return out

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        new = self.codes(vectors)
        moved, self._moved = self._moved, None
        if moved is None and bool(np.all(positions == np.arange(len(self._packed), len(self._packed) + len(new)))):
            self._packed = np.concatenate([self._packed, new])
            self._engine.add(new)
            return
        packed = np.empty((len(self._packed) + len(new), self.n_bits // 8), dtype=np.uint8)
        packed[np.arange(len(self._packed)) if moved is None else moved] = self._packed
        packed[positions] = new
        self._packed = packed
        self._engine.reset()
        self._engine.add(packed)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self._moved = moved

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        shortlist = min(self.ntotal, k * self.k_factor)
        # One block of queries: faiss' default of 32 queries a block pays its threads' start and
        # stop every 32 queries (several times slower on 2 busy cores).
        self._engine.query_batch_size = max(32, len(queries))  # type: ignore[attr-defined]
        distances, positions = self._engine.search(self.codes(queries), shortlist)
        scanned = (positions >= 0).sum(axis=1).astype(np.int64)
        return -distances.astype(np.float32), positions.astype(np.int64), scanned

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"hyperplanes": self.hyperplanes_}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        planes = state.get("hyperplanes")
        expected = (self.n_bits, self.dim)
        if planes is None or planes.shape != expected or planes.dtype.kind != "f" or not np.isfinite(planes).all():
            got = "none" if planes is None else f"{planes.dtype} {planes.shape}"
            raise SemretError(f"corrupt lsh-codes index file: expected {expected} finite hyperplanes, got {got}")
        self.hyperplanes_ = planes.astype(np.float32)
