"""Vector indexes: build one over a features file, a stored collection's features, or the
embeddings a hash model stored for a collection, and save it to a file."""

from __future__ import annotations

import json
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
    from semret.app.features import CollectionFeatures
    from semret.indexes.base import VectorIndex


@dataclass(frozen=True)
class IndexVectors:
    """Vectors to index, with their image ids and labels, and where they came from (``origin``,
    saved with the index, so that `semret serve` sends an uploaded image through the same backbone
    or hash model; None for a features file, which does not say)."""

    image_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    labels: list[str | None]
    origin: dict[str, Any] | None = None


#: The index file's extra array holding ``origin`` (JSON).
ORIGIN_EXTRA = "vectors_from"


def features_origin(backbone: str, weights: str, image_size: int) -> dict[str, Any]:
    """The origin of features made by a backbone (its name, weights id and input size)."""
    return {"kind": "features", "backbone": backbone, "weights": weights, "image_size": int(image_size)}


def collection_feature_vectors(found: CollectionFeatures) -> IndexVectors:
    """A collection's features (`semret.app.features.collection_features`), with their origin."""
    arrays = found.arrays
    origin = features_origin(found.backbone, found.weights, found.image_size)
    return IndexVectors(arrays.image_ids, arrays.data, arrays.label_names(), origin)


def read_origin(extra: dict[str, npt.NDArray[Any]]) -> dict[str, Any] | None:
    """The ``origin`` saved with an index (`read_index_extra`), or None."""
    if ORIGIN_EXTRA not in extra:
        return None
    try:
        origin = json.loads(str(extra[ORIGIN_EXTRA]))
    except ValueError:
        return None
    return origin if isinstance(origin, dict) else None


def features_file_vectors(path: str | Path) -> IndexVectors:
    """The vectors of a features ``.npz`` (`semret.vision.arrays`)."""
    arrays = read_labelled_arrays(path)
    if arrays.kind != "features":
        raise SemretError(f"{path} holds images: index features or stored embeddings")
    return IndexVectors(arrays.image_ids, arrays.data.astype(np.float32), arrays.label_names())


def stored_embeddings(engine: Engine, collection: str, model: str) -> IndexVectors:
    """The embeddings a hash model stored for a collection's images."""
    stored = load_hashes(engine, model_by_name(engine, model), collection)
    return IndexVectors(stored.image_ids, stored.embeddings, stored.labels, {"kind": "embeddings", "model": model})


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
    extra = {"labels": np.array(label_names)}
    if source.origin is not None:
        extra[ORIGIN_EXTRA] = np.array(json.dumps(source.origin, sort_keys=True))
    index.save(out, extra=extra)
    params = {name: value for name, value in index.get_params().items() if name != "dim"}
    return BuiltIndex(index, kind, index.ntotal, vectors.shape[1], built, params, Path(out))
