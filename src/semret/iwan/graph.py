"""The word side of IWAN: which word -> word edges the graph has, and their weights.

Each word keeps its top-WWK associates by association strength: forward edges cue -> target with
FSG, and, as an option, backward edges target -> cue with BSG (the strength with which the target
cues the cue). An option keeps only normed pairs. Edge weight = 1 / strength, so strong
associations are short. Ties in strength are broken by the associate's word, so a graph does not
depend on the order in which words were stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from semret.errors import SemretError

MIN_TOP_K, MAX_TOP_K = 1, 10


@dataclass(frozen=True)
class IwanSettings:
    """How an IWAN graph is built. Defaults are the published setting (top-IWK = top-WWK = 4)."""

    top_iwk: int = 4
    top_wwk: int = 4
    normed_only: bool = False
    backward: bool = False

    def __post_init__(self) -> None:
        for name in ("top_iwk", "top_wwk"):
            value = getattr(self, name)
            if not MIN_TOP_K <= value <= MAX_TOP_K:
                raise SemretError(f"{name.replace('_', '-')} must be between {MIN_TOP_K} and {MAX_TOP_K}, got {value}")


@dataclass(frozen=True)
class WordEdges:
    """Directed word -> word edges, by word index, with their association strengths (0 < s <= 1)."""

    source: npt.NDArray[np.int64]
    target: npt.NDArray[np.int64]
    strength: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.source)


def select_word_edges(
    words: npt.ArrayLike,
    cue: npt.ArrayLike,
    target: npt.ArrayLike,
    fsg: npt.ArrayLike,
    bsg: npt.ArrayLike,
    normed: npt.ArrayLike,
    settings: IwanSettings,
) -> WordEdges:
    """The top-WWK edges of every word, from the norms' cue-target pairs.

    ``words`` are the words by index (for tie-breaking); ``cue``/``target`` index into it; ``bsg``
    is NaN where missing. Pairs of strength 0 make no edge (their weight would be infinite).
    """
    cue, target = np.asarray(cue, dtype=np.int64), np.asarray(target, dtype=np.int64)
    fsg, bsg = np.asarray(fsg, dtype=np.float64), np.asarray(bsg, dtype=np.float64)
    keep = np.asarray(normed, dtype=bool) if settings.normed_only else np.ones(len(cue), dtype=bool)
    sources, targets, strengths = [cue[keep]], [target[keep]], [fsg[keep]]
    if settings.backward:
        sources.append(target[keep])
        targets.append(cue[keep])
        strengths.append(bsg[keep])
    source, dest, strength = np.concatenate(sources), np.concatenate(targets), np.concatenate(strengths)
    usable = np.isfinite(strength) & (strength > 0) & (source != dest)
    source, dest, strength = source[usable], dest[usable], strength[usable]

    # Order by source, then strongest first, then the associate's word; keep each edge's strongest
    # occurrence (forward and backward may give the same edge), then the first top-WWK per source.
    word_rank = np.argsort(np.argsort(np.asarray(words, dtype=object), kind="stable"), kind="stable")
    order = np.lexsort((word_rank[dest], -strength, source))
    source, dest, strength = source[order], dest[order], strength[order]
    first_of_edge = np.ones(len(source), dtype=bool)
    if len(source):
        pair_key = source * (len(word_rank) + 1) + dest
        _, first_index = np.unique(pair_key, return_index=True)
        first_of_edge[:] = False
        first_of_edge[first_index] = True
    source, dest, strength = source[first_of_edge], dest[first_of_edge], strength[first_of_edge]
    rank_in_source = np.arange(len(source)) - np.searchsorted(source, source, side="left")
    top = rank_in_source < settings.top_wwk
    return WordEdges(source[top], dest[top], strength[top])


def word_matrix(edges: WordEdges, n_words: int) -> sparse.csr_matrix:
    """The word graph as a CSR matrix of edge weights 1 / strength (for scipy's Dijkstra)."""
    return sparse.csr_matrix((1.0 / edges.strength, (edges.source, edges.target)), shape=(n_words, n_words))
