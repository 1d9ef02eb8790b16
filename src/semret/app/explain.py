"""Why a result was retrieved, in the terms of the method that found it.

- IWAN: the path query -> words -> image, with each edge's strength. A path's steps carry the
  distance from the query; an edge of strength s costs 1 / s (Dijkstra on 1 / strength, as the
  published IWAN), so each edge's strength is 1 / (the step's distance - the previous one's).
- Hierarchy-based methods (the semantic hash, whose class embeddings place classes as similar as
  their lowest common subsumer is low, Barz & Denzler 2019): the lowest common ancestor of the
  query's class and the result's, and their similarity 1 - height(lcs) / max height.
- Hamming: the distance between the two binary codes and which bits differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.vision.hierarchy import ClassHierarchy, available_hierarchies


def iwan_edges(names: Sequence[str], distances: Sequence[float]) -> list[dict[str, Any]]:
    """The edges of an IWAN path (node names and their distances from the query), each with its
    strength 1 / (distance gained along it)."""
    if len(names) != len(distances):
        raise SemretError(f"a path of {len(names)} nodes needs {len(names)} distances, got {len(distances)}")
    edges = []
    for i in range(1, len(names)):
        step = float(distances[i]) - float(distances[i - 1])
        edges.append({"from": names[i - 1], "to": names[i], "strength": 1.0 / step if step > 0 else None})
    return edges


def hierarchy_for(dataset: str | None) -> ClassHierarchy | None:
    """The class hierarchy shipped for a collection's dataset, if semret has one."""
    if dataset is None:
        return None
    names = {name.lower(): name for name in available_hierarchies()}
    found = names.get(dataset.lower())
    return ClassHierarchy.packaged(found) if found else None


def class_relation(
    hierarchy: ClassHierarchy | None, query_label: str | None, label: str | None
) -> dict[str, Any] | None:
    """The lowest common ancestor of two classes and their similarity, or None where either label
    is unknown or not a class of the hierarchy."""
    if hierarchy is None or query_label is None or label is None:
        return None
    try:
        common = hierarchy.lcs(query_label, label)
        return {"lca": hierarchy.name(common), "similarity": float(hierarchy.similarity(query_label, label))}
    except SemretError:  # a label the hierarchy does not know: no explanation rather than an error
        return None


def differing_bits(query_code: npt.NDArray[np.uint8], code: npt.NDArray[np.uint8], n_bits: int) -> dict[str, Any]:
    """The Hamming distance of two packed codes and the positions (0 = first bit) where they differ."""
    bits = np.unpackbits(np.bitwise_xor(np.asarray(query_code, np.uint8), np.asarray(code, np.uint8)))[:n_bits]
    positions = np.flatnonzero(bits)
    return {"hamming_distance": len(positions), "differing_bits": positions.tolist(), "n_bits": int(n_bits)}
