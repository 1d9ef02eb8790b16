"""The readable reference for IWAN retrieval: Dijkstra on the full graph with networkx.

It builds the graph exactly as the model describes it (a query node, word nodes, image nodes;
weight = 1 / strength; images have no outgoing edges, so they are sinks) and runs
`networkx.single_source_dijkstra` from the query node. It is slow and obviously right, which is
what `semret.iwan.index.IwanIndex` is checked against.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.iwan.index import NO_IMAGE, IwanIndex, WeightedWords

QUERY = ("query",)


class ReferenceIwan:
    """The full IWAN graph of an `IwanIndex` in networkx, searched like the index."""

    def __init__(self, index: IwanIndex) -> None:
        self.index = index
        graph = nx.DiGraph()
        graph.add_nodes_from(("word", i) for i in range(len(index.words)))
        edges = index.edges
        for source, target, strength in zip(edges.source, edges.target, edges.strength, strict=True):
            graph.add_edge(("word", int(source)), ("word", int(target)), weight=1.0 / float(strength))
        for image, word, weight in zip(index._link_images, index._link_words, index._link_weights, strict=True):
            node = ("image", int(image))
            # min: an image linked twice to a word keeps its strongest link, as in the fast path
            current = graph.get_edge_data(("word", int(word)), node, {}).get("weight", np.inf)
            graph.add_edge(("word", int(word)), node, weight=min(float(weight), current))
        self.graph = graph

    def distances(self, query: WeightedWords) -> dict[tuple, float]:
        """Shortest distance from the query node to every reachable node."""
        self.graph.add_node(QUERY)
        try:
            for word, strength in zip(query.words, query.strengths, strict=True):
                self.graph.add_edge(QUERY, ("word", int(word)), weight=1.0 / float(strength))
            distances, _ = nx.single_source_dijkstra(self.graph, QUERY)
        finally:
            self.graph.remove_node(QUERY)
        return distances

    def search(
        self, queries: Sequence[WeightedWords], k: int = 10, exclude: Sequence[int | None] | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The k nearest images of each query, ties by image id: same shape as `IwanIndex.search`."""
        if k < 1:
            raise SemretError(f"k must be at least 1, got {k}")
        excluded = list(exclude) if exclude is not None else [None] * len(queries)
        out_distances = np.full((len(queries), k), np.inf)
        out_ids = np.full((len(queries), k), NO_IMAGE, dtype=np.int64)
        for row, (query, skip) in enumerate(zip(queries, excluded, strict=True)):
            images = sorted(
                (distance, node[1])
                for node, distance in self.distances(query).items()
                if node[0] == "image" and node[1] != skip
            )[:k]
            for column, (distance, image) in enumerate(images):
                out_distances[row, column], out_ids[row, column] = distance, image
        return out_distances, out_ids
