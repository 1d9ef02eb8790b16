"""Semantic hashing: train a hash model on labelled images or features (a file, or a stored
collection's features), encode a collection's images and store their embeddings and codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from semret.app.collections import check_target
from semret.errors import SemretError
from semret.hashing.class_embeddings import class_embeddings
from semret.sql.bulk import MergeCounts
from semret.sql.hash_store import StoredModel, register_model, store_hashes
from semret.sql.migrations import require_current_schema
from semret.vision.arrays import LabelledArrays
from semret.vision.hierarchy import ClassHierarchy, available_hierarchies

if TYPE_CHECKING:  # torch is slow to import: the hasher is imported where it is used
    from semret.hashing.cimon import CimonHasher
    from semret.hashing.hasher import SemanticHasher

    HashModel = SemanticHasher | CimonHasher

Progress = Callable[[str, int, int], None]


def load_hierarchy(name_or_path: str) -> ClassHierarchy:
    """A hierarchy shipped with semret (by name) or read from a file."""
    if name_or_path in available_hierarchies():
        return ClassHierarchy.packaged(name_or_path)
    if not Path(name_or_path).exists():
        raise SemretError(f"no hierarchy {name_or_path!r}: give a file or one of {', '.join(available_hierarchies())}")
    return ClassHierarchy.from_file(name_or_path)


@dataclass(frozen=True)
class HashTraining:
    """A trained hash model, written to ``out``, and how well it fits its training data."""

    hasher: SemanticHasher
    kind: str
    images: int
    final_loss: float
    #: Share of the training images whose nearest class embedding is their own class.
    accuracy: float
    out: Path


def train_hasher(
    arrays: LabelledArrays,
    hierarchy: str | ClassHierarchy,
    out: str | Path,
    *,
    source: str = "the training data",
    progress: Progress | None = None,
    **params: Any,
) -> HashTraining:
    """Train the semantic hash network on labelled images (through a ``backbone``) or features
    (without one) and write its checkpoint to ``out``. ``params`` are `SemanticHasher`'s own
    parameters (``n_bits``, ``epochs``, ``backbone``...), passed on as they are; ``source`` names
    the data in errors."""
    from semret.hashing.hasher import SemanticHasher  # torch

    hasher = SemanticHasher(**params)  # its parameters checked before any work
    backbone = hasher.backbone
    if arrays.kind == "images" and backbone is None:
        raise SemretError(f"{source} holds images: choose a --backbone to encode them")
    if arrays.kind == "features" and backbone is not None:
        raise SemretError(f"{source} holds features already: leave out --backbone")
    classes = load_hierarchy(hierarchy) if isinstance(hierarchy, str) else hierarchy
    classes.require_classes(arrays.class_names)
    targets = class_embeddings(classes, arrays.class_names)
    hasher.fit(arrays.data, arrays.labels, targets, arrays.class_names, progress=progress)
    hasher.save(out)
    accuracy = float(np.mean(hasher.predict_classes(arrays.data) == arrays.labels))
    return HashTraining(hasher, arrays.kind, len(arrays.labels), hasher.loss_history_[-1], accuracy, Path(out))


def load_hasher(checkpoint: str | Path) -> HashModel:
    """A hash model from the checkpoint ``semret hash train`` wrote: the semantic hash
    (`train_hasher`) or CIMON (`semret.app.cimon.train_cimon`), told apart by the file's format."""
    from semret.hashing.cimon import CHECKPOINT_FORMAT as CIMON_FORMAT
    from semret.hashing.cimon import CimonHasher
    from semret.hashing.hasher import SemanticHasher  # torch
    from semret.torch_files import load_torch_file

    payload = load_torch_file(checkpoint, "hash model checkpoint")
    if isinstance(payload, dict) and payload.get("format") == CIMON_FORMAT:
        return CimonHasher.load(checkpoint)
    return SemanticHasher.load(checkpoint)


@dataclass(frozen=True)
class HashEncoding:
    """What encoding a collection's images under a hash model stored."""

    model: StoredModel
    collection: str
    images: int
    counts: MergeCounts


def encode_and_store(
    engine: Engine,
    hasher: HashModel,
    checkpoint: str | Path,
    arrays: LabelledArrays,
    collection: str,
    name: str | None = None,
    *,
    create: bool = False,
    add_images: bool = False,
    progress: Progress | None = None,
) -> HashEncoding:
    """Encode images (or features) to embeddings and codes and store them in ``collection`` under
    the model ``name`` (default: the checkpoint's file stem). The collection must exist unless
    ``create``, and hold every image unless ``add_images``."""
    require_current_schema(engine)
    check_target(engine, collection, arrays.image_ids, create=create, add_images=add_images)
    from semret.hashing.cimon import CimonHasher  # torch

    if isinstance(hasher, CimonHasher):
        if arrays.kind != "features":
            raise SemretError("a CIMON model encodes features: give a collection (through its backbone) or features")
        encoded = hasher.encode_images(arrays.data, progress=progress)
    else:
        encoded = hasher.encode(arrays.data, progress=progress)
    stored_model = register_model(
        engine,
        name or Path(checkpoint).stem,
        hasher.n_bits,
        int(encoded.embeddings.shape[1]),
        hasher.get_params(),
        checkpoint,
    )
    counts = store_hashes(
        engine, stored_model, collection, arrays.image_ids, encoded.embeddings, encoded.codes, arrays.label_names()
    )
    return HashEncoding(stored_model, collection, len(arrays.image_ids), counts)
