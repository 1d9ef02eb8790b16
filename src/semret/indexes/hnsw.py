"""HNSW graph index on faiss (``IndexHNSWFlat``, inner product on the unit vectors).

Hierarchical navigable small-world graphs: Malkov and Yashunin, "Efficient and robust approximate
nearest neighbor search using Hierarchical Navigable Small World graphs", IEEE TPAMI 2020. faiss
builds and searches the graph; semret keeps the parameters faiss uses (``M`` neighbours per node,
``efConstruction`` at build, ``efSearch`` at search, never below k) and re-scores faiss' k results
with semret's defined cosine similarity, ties by id (`semret.indexes.base`). The result is
approximate: which vectors are found depends on the graph, not only on the scores.

The graph is saved with the index (faiss' own serialisation), so a loaded index answers as the one
saved; faiss builds it on several threads, so two builds of the same vectors may differ slightly.
``last_candidates`` counts the results re-scored per query (the candidates scored by cosine);
``last_distance_computations`` is the mean number of distances faiss computed per query in the
last batch (the graph walk's work).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.validation import check_int
from semret.errors import SemretError
from semret.indexes.base import Proposals, VectorIndex
from semret.indexes.store import Slots

__all__ = ["HnswIndex"]


class HnswIndex(VectorIndex):
    """faiss HNSW: ``m`` links per node, ``ef_construction`` and ``ef_search`` beam widths."""

    kind = "hnsw"
    uses_engine = True
    engine_is_exhaustive = False

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 40, ef_search: int = 64) -> None:
        super().__init__(dim)
        self.m = check_int("m", m, 2, 512)
        self.ef_construction = check_int("ef_construction", ef_construction, 1)
        self.ef_search = check_int("ef_search", ef_search, 1)
        self._graph = self._new_graph()
        self._slots = Slots()
        self._loaded_graph: faiss.IndexHNSWFlat | None = None
        self.last_distance_computations = 0.0

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        return graph

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if self._loaded_graph is not None:  # the vectors of a saved index: its graph holds them
            graph, self._loaded_graph = self._loaded_graph, None
            if graph.ntotal != len(positions) or len(self._slots.positions) != len(positions):
                raise SemretError(f"corrupt hnsw index file: a graph of {graph.ntotal} vectors for {len(positions)}")
            self._graph = graph
            return
        self._graph.add(vectors)
        self._slots.append(positions)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self._slots.renumber(moved)

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        self._graph.hnsw.efSearch = max(self.ef_search, k)
        stats = faiss.cvar.hnsw_stats  # type: ignore[attr-defined]
        stats.reset()
        scores, entries = self._graph.search(queries, k)
        self.last_distance_computations = int(stats.ndis) / max(1, len(queries))
        positions = self._slots.to_positions(entries)
        return scores, positions, (positions >= 0).sum(axis=1).astype(np.int64)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        if self._graph.ntotal == 0:
            return {}
        return {"graph": faiss.serialize_index(self._graph), "slots": self._slots.positions}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if "graph" not in state:
            return
        try:
            graph = faiss.deserialize_index(np.ascontiguousarray(state["graph"], dtype=np.uint8))
        except RuntimeError as exc:
            raise SemretError(
                f"corrupt hnsw index file: its graph does not read ({str(exc).splitlines()[0]})"
            ) from None
        slots = np.asarray(state.get("slots", np.zeros(0)), dtype=np.int64)
        if not isinstance(graph, faiss.IndexHNSWFlat) or graph.d != self.dim or len(slots) != graph.ntotal:
            raise SemretError("corrupt hnsw index file: the graph does not fit the index's parameters")
        graph.hnsw.efConstruction = self.ef_construction
        self._loaded_graph = graph
        self._slots.positions = slots
