"""IWAN in the store: link a collection's images to norm words from class probabilities, and build
its image-word graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from semret.app.collections import check_target
from semret.errors import SemretError
from semret.iwan.graph import MAX_TOP_K, IwanSettings
from semret.iwan.links import Predictions, ranked_words_from_probabilities
from semret.iwan.vocabulary import Vocabulary, dataset_aliases, load_aliases
from semret.sql.bulk import MergeCounts
from semret.sql.images_store import collection_images, store_image_words, store_images
from semret.sql.iwan_store import IwanBuildReport, build_iwan_graph
from semret.sql.norms_store import known_words
from semret.vision.datasets import FOLDER


@dataclass(frozen=True)
class LinkReport:
    """What linking a collection's images to words did."""

    vocabulary: Vocabulary
    images: MergeCounts
    image_words: MergeCounts


def label_aliases(dataset: str | None = None, aliases: str | Path | None = None) -> dict[str, list[str]] | None:
    """The label -> norm-word aliases shipped for ``dataset``, or read from the file ``aliases``
    (none: labels are matched to words as they are)."""
    if dataset and aliases:
        raise SemretError("give --dataset or --aliases, not both")
    return dataset_aliases(dataset) if dataset else load_aliases(aliases) if aliases else None


def collection_aliases(engine: Engine, collection: str) -> dict[str, list[str]] | None:
    """The aliases shipped for the dataset a collection was imported from (None if it has none)."""
    dataset = collection_images(engine, collection).dataset
    return dataset_aliases(dataset) if dataset is not None and dataset != FOLDER else None


def link_predictions(
    engine: Engine,
    collection: str,
    predictions: Predictions,
    aliases: Mapping[str, Sequence[str]] | None = None,
    words_per_image: int = MAX_TOP_K,
    *,
    create: bool = False,
    add_images: bool = False,
) -> LinkReport:
    """Store a collection's images and each image's top words from its class probabilities.

    Every class name must map to a word of the loaded norms (the error names those that do not).
    The collection must exist unless ``create``, and hold every predicted image unless ``add_images``.
    """
    if not 1 <= words_per_image <= MAX_TOP_K:
        raise SemretError(f"words per image must be between 1 and {MAX_TOP_K}, got {words_per_image}")
    vocabulary = Vocabulary.build(predictions.class_names, known_words(engine), aliases)
    vocabulary.require_complete()
    ranked = ranked_words_from_probabilities(
        predictions.image_ids,
        predictions.probabilities,
        vocabulary.class_words(predictions.class_names),
        words_per_image,
    )
    check_target(engine, collection, predictions.image_ids, create=create, add_images=add_images)
    known = any(label is not None for label in predictions.labels)  # else keep the labels stored
    images = store_images(engine, collection, predictions.image_ids, predictions.labels if known else None)
    words = store_image_words(engine, collection, ranked)
    return LinkReport(vocabulary, images, words)


def build_graph(
    engine: Engine,
    collection: str,
    top_iwk: int = 4,
    top_wwk: int = 4,
    normed_only: bool = False,
    backward: bool = False,
) -> IwanBuildReport:
    """Build (or rebuild) the IWAN graph of a collection from its image words and the loaded norms."""
    return build_iwan_graph(
        engine, collection, IwanSettings(top_iwk=top_iwk, top_wwk=top_wwk, normed_only=normed_only, backward=backward)
    )
