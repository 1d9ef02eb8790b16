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

The Hamming side (modes "hamming" and "rerank") is a `HammingIndex` of the kind ``hamming``
names, a spec string: ``"flat"`` (default; exact, faiss' ``IndexBinaryFlat``), or the approximate
``"ivf:nlist=...,nprobe=..."`` (``IndexBinaryIVF``) and ``"multihash:nhash=...,b=...,nflip=..."``
(``IndexBinaryMultiHash``), whose shortlists may miss some of the m nearest codes and then hold
fewer than m (see `semret.core.hamming`).

A query is one typed record, `HashQueries(embeddings, codes)`, and the index follows semret's
search contract (`semret.core.search`): ``search(HashQueries(...), k, exclude_ids=...)``, results
sorted by score (descending), ties by id (ascending), rows padded with score -inf and id -1 when
fewer than k images qualify. With m >= the collection size, "rerank" gives exactly the results
of "exact".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from semret.core.codes import check_packed
from semret.core.cosine import CosineIndex, normalise
from semret.core.hamming import HammingIndex
from semret.core.search import SearcherBase
from semret.core.validation import check_absent, check_choice, check_ids, check_k
from semret.errors import SemretError

__all__ = ["HashQueries", "Mode", "SemanticHashIndex"]

Mode = Literal["exact", "hamming", "rerank"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class HashQueries:
    """A batch of semantic-hash queries: their class embeddings (queries, dim) and packed codes
    (queries, bytes). "exact" needs only the embeddings, "hamming" only the codes."""

    embeddings: npt.NDArray[np.float32] | None
    codes: npt.NDArray[np.uint8] | None

    def __len__(self) -> int:
        for part in (self.embeddings, self.codes):
            if part is not None:
                return len(part)
        raise SemretError("a hash query needs embeddings, codes or both")

    def row(self, i: int) -> HashQueries:
        """The i-th query alone (a batch of one)."""
        return HashQueries(
            None if self.embeddings is None else self.embeddings[i : i + 1],
            None if self.codes is None else self.codes[i : i + 1],
        )


class SemanticHashIndex(SearcherBase):
    """Embeddings and codes of one collection, searched in ``mode`` "exact", "hamming" or "rerank".

    ``shortlist`` is the Hamming shortlist size m of "rerank" (None: 2k); it must be >= k. It
    counts the results asked for: with ``exclude_ids`` the excluded images get a place of their own.
    ``hamming`` is the Hamming index's spec (`HammingIndex.from_spec`): "flat" (exact) by default.
    """

    def __init__(
        self,
        n_bits: int,
        dim: int,
        mode: Mode = "rerank",
        shortlist: int | None = None,
        n_threads: int | None = None,
        hamming: str = "flat",
    ) -> None:
        self.mode: Mode = check_choice("retrieval mode", mode, MODES)  # type: ignore[assignment]
        self.shortlist = None if shortlist is None else check_k(shortlist, "shortlist")
        self.hamming = HammingIndex.from_spec(hamming, n_bits, n_threads=n_threads)
        self.cosine = CosineIndex(dim)
        self.last_candidates = np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"SemanticHashIndex(n_bits={self.n_bits}, dim={self.dim}, mode={self.mode!r}, "
            f"shortlist={self.shortlist}, hamming={self.hamming.spec!r}, ntotal={self.ntotal})"
        )

    @property
    def score_name(self) -> str:  # type: ignore[override]
        return "-hamming" if self.mode == "hamming" else "cosine"

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

    def empty_error(self) -> SemretError:
        return SemretError("the semantic hash index is empty: add images before searching")

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[Any]:
        """Hamming distances in mode "hamming"; the cosine similarities otherwise."""
        return self.hamming.to_distance(scores) if self.mode == "hamming" else np.asarray(scores)

    def _search(
        self, queries: HashQueries, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k best images per query: (scores float32, ids int64), each (queries, k)."""
        if not isinstance(queries, HashQueries):
            raise SemretError("semantic hash queries are a HashQueries(embeddings, codes) record")
        if self.mode == "exact":
            if queries.embeddings is None:
                raise SemretError("mode 'exact' needs query embeddings")
            result = self.cosine.search(queries.embeddings, k)
            self.last_candidates = self.cosine.last_candidates
            return result
        if queries.codes is None:
            raise SemretError(f"mode {self.mode!r} needs query codes")
        if self.mode == "hamming":
            result = self.hamming.search(queries.codes, k)
            self.last_candidates = self.hamming.last_candidates
            return result
        if queries.embeddings is None:
            raise SemretError(f"mode {self.mode!r} needs query embeddings")
        wanted = k - n_excluded
        m = 2 * k if self.shortlist is None else self.shortlist + n_excluded
        if m - n_excluded < wanted:
            raise SemretError(f"the shortlist ({m - n_excluded}) must be at least k ({wanted})")
        embeddings = np.asarray(queries.embeddings)
        normalise(embeddings, self.dim, "query embeddings")  # checks; the cosine index normalises
        codes = check_packed(queries.codes, self.n_bits, "query codes")
        if len(embeddings) != len(codes):
            raise SemretError(f"got {len(embeddings)} query embeddings and {len(codes)} query codes")
        _, positions = self.hamming.search_positions(codes, m)
        self.last_candidates = (positions >= 0).sum(axis=1).astype(np.int64)
        return self.cosine.search_subset_positions(embeddings, positions, k)
