"""Vector indexes: build one over a features file, a stored collection's features, or the
embeddings a hash model stored for a collection, and save it to a file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.core.spec import Spec
from semret.errors import SemretError
from semret.sql.hash_store import load_hashes, model_by_name
from semret.vision.arrays import read_labelled_arrays

if TYPE_CHECKING:  # faiss and torch are slow to import: the indexes are imported where they are used
    from semret.indexes.base import VectorIndex


@dataclass(frozen=True)
class IndexVectors:
    """Vectors to index, with their image ids and labels."""

    image_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    labels: list[str | None]


def features_file_vectors(path: str | Path) -> IndexVectors:
    """The vectors of a features ``.npz`` (`semret.vision.arrays`)."""
    arrays = read_labelled_arrays(path)
    if arrays.kind != "features":
        raise SemretError(f"{path} holds images: index features or stored embeddings")
    return IndexVectors(arrays.image_ids, arrays.data.astype(np.float32), arrays.label_names())


def stored_embeddings(engine: Engine, collection: str, model: str) -> IndexVectors:
    """The embeddings a hash model stored for a collection's images."""
    stored = load_hashes(engine, model_by_name(engine, model), collection)
    return IndexVectors(stored.image_ids, stored.embeddings, stored.labels)


def parse_index_spec(text: str) -> Spec:
    """An index spec string (``"kmeans:n_probe=4"``), its kind, parameter names and values checked
    before any work (`semret.indexes.base.parse_index_spec`)."""
    from semret.indexes.base import parse_index_spec as parse

    return parse(text)


@dataclass(frozen=True)
class BuiltIndex:
    """An index built and saved: its kind, size, parameters and build time."""

    index: VectorIndex
    kind: str
    vectors: int
    dims: int
    seconds: float
    params: dict[str, Any]
    out: Path


def build_index(spec: str | Spec, source: IndexVectors, out: str | Path) -> BuiltIndex:
    """Build the index a spec names (``"lsh:n_bits=8,n_tables=8"``) over ``source`` (fitted with
    the labels as classes, where the index learns and labels are known) and save it, with the
    labels, to ``out``."""
    from semret.indexes.base import make_index_from_spec

    ids, vectors, labels = source.image_ids, source.vectors, source.labels
    index = make_index_from_spec(spec, vectors.shape[1])
    kind = index.kind
    label_names = [label or "" for label in labels]
    class_of = {name: i for i, name in enumerate(sorted(set(label_names)))}
    start = time.perf_counter()
    if index.needs_fit:
        index.fit(vectors, np.array([class_of[name] for name in label_names]) if any(label_names) else None)
    index.add(ids, vectors)
    built = time.perf_counter() - start
    index.save(out, extra={"labels": np.array(label_names)})
    params = {name: value for name, value in index.get_params().items() if name != "dim"}
    return BuiltIndex(index, kind, index.ntotal, vectors.shape[1], built, params, Path(out))
