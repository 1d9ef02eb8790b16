"""`SemanticHashIndex`: the three retrieval modes of Barz & Denzler's semantic hashing system.

Every image has a class embedding (the network's embedding output, compared by cosine similarity)
and a binary code (its thresholded hash layer, compared by Hamming distance). Over one collection:

- ``"exact"``: exhaustive cosine kNN on the embeddings (`CosineIndex`); scores are cosine
  similarities. Query codes are not needed.
- ``"hamming"``: pure Hamming kNN on the codes (`HammingIndex`); scores are **minus** the Hamming
  distance (as float32), so that in every mode a higher score is better. Query embeddings are not
  needed.
- ``"rerank"`` (the published system): a shortlist of the m nearest codes by Hamming distance,
  then re-ranked by the cosine similarity of the embeddings; scores are cosine similarities. m
  is ``shortlist``, by default 2k as published. The shortlist takes the codes at the m-th
  distance by id (ascending), so it is deterministic.

Results are sorted by score (descending), ties by id (ascending); rows are padded with score
-inf and id -1 when fewer than k images qualify. With m >= the collection size, "rerank" gives
exactly the results of "exact".
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.hashing.codes import check_packed
from semret.hashing.cosine import MISSING_SIMILARITY, CosineIndex, normalise
from semret.hashing.hamming import NO_ID, HammingIndex, check_absent, check_ids, check_k

__all__ = ["Mode", "SemanticHashIndex"]

Mode = Literal["exact", "hamming", "rerank"]
MODES: tuple[str, ...] = get_args(Mode)


class SemanticHashIndex:
    """Embeddings and codes of one collection, searched in ``mode`` "exact", "hamming" or "rerank".

    ``shortlist`` is the Hamming shortlist size m of "rerank" (None: 2k); it must be >= k.
    """

    def __init__(
        self,
        n_bits: int,
        dim: int,
        mode: Mode = "rerank",
        shortlist: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise SemretError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        if shortlist is not None:
            check_k(shortlist)
        self.mode: Mode = mode
        self.shortlist = shortlist
        self.hamming = HammingIndex(n_bits, n_threads=n_threads)
        self.cosine = CosineIndex(dim)

    def __repr__(self) -> str:
        return (
            f"SemanticHashIndex(n_bits={self.n_bits}, dim={self.dim}, mode={self.mode!r}, "
            f"shortlist={self.shortlist}, ntotal={self.ntotal})"
        )

    @property
    def n_bits(self) -> int:
        return self.hamming.n_bits

    @property
    def dim(self) -> int:
        return self.cosine.dim

    @property
    def ntotal(self) -> int:
        """Number of images in the index."""
        return self.hamming.ntotal

    def reset(self) -> None:
        """Remove every image."""
        self.hamming.reset()
        self.cosine.reset()

    def add(self, ids: npt.ArrayLike, embeddings: npt.ArrayLike, packed_codes: npt.ArrayLike) -> None:
        """Add images: distinct new ids (>= 0), (n, dim) embeddings and (n, ceil(n_bits / 8)) packed codes."""
        codes = check_packed(packed_codes, self.n_bits)
        vectors = np.asarray(embeddings)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise SemretError(f"embeddings must be a 2-d (n, {self.dim}) array, got shape {vectors.shape}")
        if len(vectors) != len(codes):
            raise SemretError(f"got {len(vectors)} embeddings and {len(codes)} codes")
        new_ids = check_ids(ids, len(codes))
        check_absent(self.hamming.ids, new_ids)
        # All that can fail in the Hamming index is checked: the cosine index checks the
        # embeddings (and adds nothing if they fail), then the codes go in.
        self.cosine.add(new_ids, vectors)
        self.hamming.add(new_ids, codes)

    def search(
        self,
        query_embeddings: npt.ArrayLike | None,
        query_codes: npt.ArrayLike | None,
        k: int,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k best images per query: (scores float32, ids int64), each (queries, k).

        "exact" needs only the embeddings, "hamming" only the codes, "rerank" both (one row per
        query in each).
        """
        k = check_k(k)
        if self.ntotal == 0:
            raise SemretError("the semantic hash index is empty: add images before searching")
        if self.mode == "exact":
            if query_embeddings is None:
                raise SemretError("mode 'exact' needs query embeddings")
            return self.cosine.search(query_embeddings, k)
        if query_codes is None:
            raise SemretError(f"mode {self.mode!r} needs query codes")
        if self.mode == "hamming":
            distances, ids = self.hamming.search(query_codes, k)
            scores = np.where(ids == NO_ID, MISSING_SIMILARITY, -distances.astype(np.float32))
            return scores.astype(np.float32), ids
        if query_embeddings is None:
            raise SemretError(f"mode {self.mode!r} needs query embeddings")
        m = 2 * k if self.shortlist is None else self.shortlist
        if m < k:
            raise SemretError(f"the shortlist ({m}) must be at least k ({k})")
        embeddings = np.asarray(query_embeddings)
        normalise(embeddings, self.dim, "query embeddings")  # checks; the cosine index normalises
        codes = check_packed(query_codes, self.n_bits, "query codes")
        if len(embeddings) != len(codes):
            raise SemretError(f"got {len(embeddings)} query embeddings and {len(codes)} query codes")
        _, positions = self.hamming.search_positions(codes, m)
        return self.cosine.search_subset_positions(embeddings, positions, k)
