"""IWAN retrieval: the images nearest to a query in the image-word association network.

The graph has a query node, word nodes and image nodes. Edges are directed with weight
1 / strength: query -> the query's words (strength = predicted probability), word -> its top-WWK
associates (`semret.iwan.graph`), word -> every image that has the word among its top-IWK words.
Images are sinks, so no shortest path passes through one, and an image's distance is

    d(image) = min over its words w of ( d(w) + 1 / strength(w, image) )

with d(w) the word distances from the query. The fast path therefore runs Dijkstra on the word
graph alone (scipy.sparse.csgraph, one extra node per query) and ranks images with vectorised
numpy; `semret.iwan.reference` is the readable networkx version on the full graph, and the
results are identical. Ties are broken by image id.

`IwanIndex` follows semret's search contract (`semret.core.search`): ``search(queries, k, *,
exclude_ids=None) -> (scores, ids)`` with queries a batch of `WeightedWords`, scores minus the
path length (higher is better; `to_distance` gives the path length back), and ``last_candidates``
the word nodes Dijkstra reached per query. Where the images are ranked is the ``ranker``'s
business: in memory (the index itself) or in the database (`semret.sql.iwan_store`), behind one
`ImageRanker` interface.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from semret.core.search import SearcherBase
from semret.core.sorted_ids import position_of
from semret.core.validation import check_k
from semret.errors import SemretError, UnknownWordError
from semret.iwan.graph import IwanSettings, WordEdges, word_matrix
from semret.iwan.norms import normalise_word

NO_IMAGE = -1

#: Links of some images: image id -> (word indices, strengths).
ImageLinks = Mapping[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]


@dataclass(frozen=True)
class WeightedWords:
    """A query: word indices and their strengths (0 < strength <= 1)."""

    words: npt.NDArray[np.int64]
    strengths: npt.NDArray[np.float64]


class ImageRanker(Protocol):
    """Ranks images from one query's word distances: the k nearest (distances, image ids), ties by
    id, padded with inf / -1, leaving out the ``exclude`` image. ``min_link_weight`` is a lower
    bound of every word -> image weight, which the early stop relies on; ``ntotal`` the number of
    images it ranks."""

    @property
    def min_link_weight(self) -> float: ...

    @property
    def ntotal(self) -> int: ...

    def __call__(
        self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...


@dataclass(frozen=True)
class PathStep:
    """One node of an explanation path, with the distance from the query at that node."""

    kind: str  # "query", "word" or "image"
    name: str
    distance: float


class IwanIndex(SearcherBase):
    """An IWAN graph, searched with `search(queries, k) -> (scores, image_ids)` (scores = minus
    the path length).

    ``words`` names the word nodes by index; ``edges`` are the word -> word edges;
    ``image_ids``/``link_words``/``link_strengths`` are the image -> word links (top-IWK per image,
    already cut; empty when a ``ranker`` ranks the images elsewhere). ``labels`` maps image ids to
    labels, for display. With ``early_stop``, Dijkstra stops at a distance bound that is raised
    until the top k are provably exact.
    """

    score_name = "-path length"

    def __init__(
        self,
        words: Sequence[str],
        edges: WordEdges,
        image_ids: npt.ArrayLike,
        link_words: npt.ArrayLike,
        link_strengths: npt.ArrayLike,
        settings: IwanSettings | None = None,
        labels: Mapping[int, str | None] | None = None,
        ranker: ImageRanker | None = None,
        early_stop: bool = True,
    ) -> None:
        self.ranker = ranker
        self.early_stop = early_stop
        self.last_candidates = np.zeros(0, dtype=np.int64)
        self.words = list(words)
        self.word_index = {word: i for i, word in enumerate(self.words)}
        self.edges = edges
        self.settings = settings or IwanSettings()
        self.labels = dict(labels or {})
        self.matrix = word_matrix(edges, len(self.words))
        ids = np.asarray(image_ids, dtype=np.int64)
        link_word_array = np.asarray(link_words, dtype=np.int64)
        strengths = np.asarray(link_strengths, dtype=np.float64)
        if not (len(ids) == len(link_word_array) == len(strengths)):
            raise SemretError("image ids, link words and link strengths must have the same length")
        if len(strengths) and not (np.all(strengths > 0) and np.all(strengths <= 1)):
            raise SemretError("image-word strengths must be in (0, 1]")
        order = np.lexsort((link_word_array, ids))
        self._link_images = ids[order]
        self._link_words = link_word_array[order]
        self._link_strengths = strengths[order]
        self._link_weights = 1.0 / self._link_strengths
        self.image_ids, self._image_starts, self._link_image_positions = np.unique(
            self._link_images, return_index=True, return_inverse=True
        )
        # Inverted links: for each word, its link numbers (so only reached words are scored).
        self._links_by_word = np.argsort(self._link_words, kind="stable")
        self._word_link_starts = np.searchsorted(self._link_words[self._links_by_word], np.arange(len(self.words) + 1))
        self._typical_edge = float(np.median(self.matrix.data)) if self.matrix.nnz else 1.0
        self._min_link_weight = float(self._link_weights.min()) if len(self._link_weights) else np.inf

    # --- queries -----------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Number of images searched (those the ranker ranks)."""
        return self.ranker.ntotal if self.ranker is not None else len(self.image_ids)

    def empty_error(self) -> SemretError:
        return SemretError("the IWAN index has no images")

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Path lengths from contract scores (padding -inf -> inf)."""
        return -np.asarray(scores, dtype=np.float64)

    def query_from_words(self, weighted: Mapping[str, float] | Sequence[tuple[str, float]]) -> WeightedWords:
        """A query from words and strengths, e.g. ``{"APPLE": 0.8, "PEAR": 0.1}``."""
        items = list(weighted.items()) if isinstance(weighted, Mapping) else list(weighted)
        if not items:
            raise SemretError("a query needs at least one word")
        indices, strengths = [], []
        for word, strength in items:
            key = normalise_word(word)
            if key not in self.word_index:
                raise UnknownWordError(word, _close(key, self.words))
            if not 0 < strength <= 1:
                raise SemretError(f"the strength of {key} must be in (0, 1], got {strength}")
            if self.word_index[key] in indices:
                raise SemretError(f"{key} is given twice in the query")
            indices.append(self.word_index[key])
            strengths.append(float(strength))
        return WeightedWords(np.asarray(indices, dtype=np.int64), np.asarray(strengths, dtype=np.float64))

    def query_for_image(self, image_id: int) -> WeightedWords:
        """The query made of an image's own words (its top-IWK words and their strengths)."""
        position = position_of(self.image_ids, image_id)
        if position is None:
            raise SemretError(f"image {image_id} is not in this IWAN index ({self.ntotal:,} images)")
        start = self._image_starts[position]
        end = self._image_starts[position + 1] if position + 1 < len(self._image_starts) else len(self._link_images)
        return WeightedWords(self._link_words[start:end].copy(), self._link_strengths[start:end].copy())

    # --- search ------------------------------------------------------------------------------

    def word_distances(
        self, queries: Sequence[WeightedWords], limit: float = np.inf, predecessors: bool = False
    ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
        """Shortest distances from each query node to every word node, shape (queries, words).

        Dijkstra runs on the word graph plus one node per query; ``limit`` stops it at that
        distance (farther words get inf). With ``predecessors``, also the predecessor of each node
        (an index >= the number of words is the query node).
        """
        n = len(self.words)
        rows = [q.words for q in queries]
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        data = np.concatenate([self.matrix.data, *(1.0 / q.strengths for q in queries)])
        indices = np.concatenate([self.matrix.indices, *rows])
        indptr = np.concatenate([self.matrix.indptr, self.matrix.indptr[-1] + np.cumsum(counts)])
        size = n + len(queries)
        graph = sparse.csr_matrix((data, indices, indptr), shape=(size, size))
        result = dijkstra(
            graph, directed=True, indices=np.arange(n, size), limit=limit, return_predecessors=predecessors
        )
        if predecessors:
            distances, previous = result
            return distances[:, :n], previous[:, :n]
        return result[:, :n]

    def image_distances(
        self, word_distances: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Images reached through the words of finite distance, given one query's word distances:
        (image positions in id order, their distances = min over their links of d(w) + weight)."""
        reached = np.flatnonzero(np.isfinite(word_distances))
        starts, ends = self._word_link_starts[reached], self._word_link_starts[reached + 1]
        counts = ends - starts
        offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        links = self._links_by_word[offsets]
        through = word_distances[self._link_words[links]] + self._link_weights[links]
        positions = self._link_image_positions[links]
        order = np.lexsort((through, positions))
        positions, through = positions[order], through[order]
        first = np.ones(len(positions), dtype=bool)
        first[1:] = positions[1:] != positions[:-1]
        return positions[first], through[first]

    def _top_k(
        self, positions: npt.NDArray[np.int64], distances: npt.NDArray[np.float64], k: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The k smallest distances (positions in id order), ties by image id, padded with inf / NO_IMAGE."""
        out_distances = np.full(k, np.inf)
        out_ids = np.full(k, NO_IMAGE, dtype=np.int64)
        candidates = np.arange(len(distances))
        if len(candidates) > k:
            kth = np.partition(distances, k - 1)[k - 1]
            candidates = candidates[distances <= kth]
        chosen = candidates[np.argsort(distances[candidates], kind="stable")][:k]
        out_distances[: len(chosen)] = distances[chosen]
        out_ids[: len(chosen)] = self.image_ids[positions[chosen]]
        return out_distances, out_ids

    def __call__(
        self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        return self.rank_images(word_distances, k, exclude)

    def rank_images(
        self, word_distances: npt.NDArray[np.float64], k: int, exclude: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The in-memory `ImageRanker`: the k nearest images given one query's word distances."""
        positions, distances = self.image_distances(word_distances)
        if exclude is not None:
            keep = self.image_ids[positions] != exclude
            positions, distances = positions[keep], distances[keep]
        return self._top_k(positions, distances, k)

    @property
    def min_link_weight(self) -> float:
        """The lightest word -> image weight of the in-memory links."""
        return self._min_link_weight

    def _search(
        self, queries: Sequence[WeightedWords], k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The k nearest images of each query: (minus distances, image_ids), each (queries, k).
        Scores stay float64, so that `to_distance` gives the exact path lengths back."""
        rank: ImageRanker = self.ranker or self
        scores = np.full((len(queries), k), -np.inf, dtype=np.float64)
        all_ids = np.full((len(queries), k), NO_IMAGE, dtype=np.int64)
        self.last_candidates = np.zeros(len(queries), dtype=np.int64)
        for row, query in enumerate(queries):
            distances, ids, reached = self.search_one(query, k, rank)
            scores[row], all_ids[row] = -distances, ids
            self.last_candidates[row] = reached
        return scores, all_ids

    def search_one(
        self, query: WeightedWords, k: int, rank: ImageRanker | None = None, exclude: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], int]:
        """One query's k nearest images as path lengths: (distances, image ids, words reached).

        With early stop, Dijkstra runs to a bound that is doubled until the k-th image found lies
        below what any word beyond the bound could give.
        """
        ranker: ImageRanker = rank or self.ranker or self
        k = min(check_k(k), max(1, ranker.ntotal))
        limit = self._initial_limit(query) if self.early_stop else np.inf
        while True:
            word_distances = self.word_distances([query], limit=limit)
            assert isinstance(word_distances, np.ndarray)
            top_distances, top_ids = ranker(word_distances[0], k, exclude)
            # Words beyond the limit can only give images a distance >= limit + the lightest
            # link, so the top k are exact once the k-th found lies strictly below that.
            if np.isinf(limit) or top_distances[-1] < limit + ranker.min_link_weight:
                return top_distances, top_ids, int(np.isfinite(word_distances[0]).sum())
            limit = limit * 2 if np.isfinite(top_distances[-1]) else np.inf

    def _initial_limit(self, query: WeightedWords) -> float:
        """A first Dijkstra bound: the farthest query word plus two typical word edges (no bound
        for a query without words: it reaches no image, which one pass shows)."""
        if not len(query.strengths):
            return np.inf
        return float((1.0 / query.strengths).max()) + 2 * self._typical_edge

    # --- explanations ------------------------------------------------------------------------

    def explain(self, query: WeightedWords, image_id: int) -> list[PathStep]:
        """The shortest path query -> words -> image that gives the image its distance."""
        own = self.query_for_image(image_id)
        return self.explain_links(query, {image_id: (own.words, own.strengths)})[image_id]

    def explain_links(self, query: WeightedWords, links: ImageLinks) -> dict[int, list[PathStep]]:
        """Paths to images whose links (word indices, strengths) are given, e.g. read from SQL."""
        result = self.word_distances([query], predecessors=True)
        assert isinstance(result, tuple)
        distances, previous = result[0][0], result[1][0]
        paths = {}
        for image_id, (words, strengths) in links.items():
            through = distances[words] + 1.0 / strengths
            if not np.isfinite(through).any():
                raise SemretError(f"image {image_id} cannot be reached from this query")
            chain = [int(words[int(np.argmin(through))])]
            while 0 <= previous[chain[-1]] < len(self.words):
                chain.append(int(previous[chain[-1]]))
            steps = [PathStep("query", "query", 0.0)]
            steps += [PathStep("word", self.words[w], float(distances[w])) for w in reversed(chain)]
            label = self.labels.get(image_id)
            steps.append(PathStep("image", f"{image_id}" + (f" ({label})" if label else ""), float(through.min())))
            paths[image_id] = steps
        return paths


def _close(word: str, vocabulary: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, vocabulary, n=5, cutoff=0.75)
