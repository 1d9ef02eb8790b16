"""The readable reference for IWAN retrieval: Dijkstra on the full graph with networkx.

It builds the graph exactly as the model describes it (a query node, word nodes, image nodes;
weight = 1 / strength; images have no outgoing edges, so they are sinks) and runs
`networkx.single_source_dijkstra` from the query node. It is slow and obviously right, which is
what `semret.iwan.index.IwanIndex` is checked against. `ReferencePublishedIwan` does the same
for the published graph (`semret.iwan.published`), built from its inputs by its literal rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.iwan.index import NO_IMAGE, IwanIndex, WeightedWords
from semret.iwan.links import RankedWords
from semret.iwan.published import ForwardNorms, PublishedIwanSettings

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


class ReferencePublishedIwan:
    """The published IWAN graph (`semret.iwan.published`) built the slow, literal way, from the same
    inputs: nodes = labels and top-IWK names of the database images plus the top-WWK associates of
    their last words; an edge for EVERY pair of nodes whose last words the norms pair (weight 1 /
    the stronger forward strength); image links; the query linked to all its names in the graph.
    Dijkstra from the query with networkx (images are sinks), results ranked like `IwanIndex`."""

    def __init__(
        self,
        image_ids: Sequence[int],
        labels: Sequence[str | None],
        predicted: RankedWords,
        norms: ForwardNorms,
        settings: PublishedIwanSettings,
        lookups: Mapping[str, str] | None = None,
    ) -> None:
        fsg = {(c, t): float(s) for c, t, s in zip(norms.cue, norms.target, norms.fsg, strict=True) if s > 0}
        overrides = dict(lookups or {})

        def last(node: str) -> str:
            return overrides.get(node) or node.split(" ")[-1]

        words = {
            int(i): (w, s) for i, w, s in zip(predicted.image_ids, predicted.words, predicted.strengths, strict=True)
        }
        graph = nx.DiGraph()
        base: set[str] = set()
        for image, label in zip(image_ids, labels, strict=True):
            names, strengths = words[int(image)]
            pairs = list(zip(names[: settings.top_iwk], strengths[: settings.top_iwk], strict=True))
            if label is not None:
                pairs.insert(0, (label.replace("_", " ").upper(), settings.label_strength))
            for name, strength in pairs:
                if strength <= 0:
                    continue
                base.add(name)
                edge = (("word", name), ("image", int(image)))
                weight = 1.0 / float(strength)
                if not graph.has_edge(*edge) or graph.edges[edge]["weight"] > weight:
                    graph.add_edge(*edge, weight=weight)
        nodes = set(base)
        for name in base:
            targets = sorted(((s, t) for (c, t), s in fsg.items() if c == last(name)), key=lambda p: (-p[0], p[1]))
            nodes.update(t for _, t in targets[: settings.top_wwk])
        for a in nodes:
            graph.add_node(("word", a))
            for b in nodes:
                strength = max(fsg.get((last(a), last(b)), 0.0), fsg.get((last(b), last(a)), 0.0))
                if a != b and strength > 0:
                    graph.add_edge(("word", a), ("word", b), weight=1.0 / strength)
        self.graph = graph
        self.nodes = sorted(nodes)

    def search(
        self,
        queries: Sequence[tuple[Sequence[str], Sequence[float]]],
        k: int = 10,
        exclude: Sequence[int | None] | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The k nearest images of each query (its predicted names and probabilities), ties by id."""
        excluded = list(exclude) if exclude is not None else [None] * len(queries)
        out_distances = np.full((len(queries), k), np.inf)
        out_ids = np.full((len(queries), k), NO_IMAGE, dtype=np.int64)
        for row, ((names, strengths), skip) in enumerate(zip(queries, excluded, strict=True)):
            self.graph.add_node(QUERY)
            try:
                for name, strength in zip(names, strengths, strict=True):
                    node = ("word", name)
                    if node in self.graph and strength > 0:
                        weight = 1.0 / float(strength)
                        if not self.graph.has_edge(QUERY, node) or self.graph.edges[QUERY, node]["weight"] > weight:
                            self.graph.add_edge(QUERY, node, weight=weight)
                distances, _ = nx.single_source_dijkstra(self.graph, QUERY)
            finally:
                self.graph.remove_node(QUERY)
            images = sorted(
                (distance, node[1]) for node, distance in distances.items() if node[0] == "image" and node[1] != skip
            )[:k]
            for column, (distance, image) in enumerate(images):
                out_distances[row, column], out_ids[row, column] = distance, image
        return out_distances, out_ids
