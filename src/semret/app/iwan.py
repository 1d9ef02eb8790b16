"""IWAN in the store: link a collection's images to norm words from class probabilities, and build
its image-word graph; for IWAN as published (`semret.iwan.published`), link them to the top-10
words of a backbone's ImageNet head and build the published graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy.typing as npt
from sqlalchemy import Engine

from semret.app.collections import check_target
from semret.app.features import DEFAULT_BACKBONE, collection_features
from semret.errors import SemretError
from semret.iwan.graph import MAX_TOP_K, IwanSettings
from semret.iwan.links import Predictions, ranked_words_from_probabilities
from semret.iwan.published import PREDICTED_WORDS, PublishedIwanSettings, predicted_words
from semret.iwan.vocabulary import Vocabulary, dataset_aliases, load_aliases
from semret.sql.bulk import MergeCounts
from semret.sql.images_store import collection_images, store_image_words, store_imagenet_words, store_images
from semret.sql.iwan_store import IwanBuildReport, PublishedBuildReport, build_iwan_graph, build_published_iwan_graph
from semret.sql.norms_store import known_words
from semret.vision.arrays import read_labelled_arrays
from semret.vision.datasets import FOLDER_DATASETS

#: progress(stage, done, total), as everywhere in semret.
Progress = Callable[[str, int, int], None]


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
    return dataset_aliases(dataset) if dataset is not None and dataset not in FOLDER_DATASETS else None


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


# --- IWAN as published: ImageNet words, the published graph ---------------------------------


@dataclass(frozen=True)
class ImagenetLinkReport:
    """What linking a collection's images to their top-10 ImageNet words did, and where they came from."""

    collection: str
    backbone: str
    images: MergeCounts
    imagenet_words: MergeCounts


def link_imagenet_probabilities(
    engine: Engine,
    collection: str,
    image_ids: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    class_names: Sequence[str],
    labels: Sequence[str | None] | None = None,
    backbone: str = "",
    *,
    create: bool = False,
    add_images: bool = False,
) -> ImagenetLinkReport:
    """Store a collection's images and each image's top-10 ImageNet words (formatted names, with
    their probabilities), the words of the published IWAN. The collection must exist unless
    ``create``, and hold every image unless ``add_images``; ``labels`` (None: keep those stored)."""
    ranked = predicted_words(image_ids, probabilities, class_names, PREDICTED_WORDS)
    check_target(engine, collection, ranked.image_ids, create=create, add_images=add_images)
    images = store_images(engine, collection, ranked.image_ids, labels)
    return ImagenetLinkReport(collection, backbone, images, store_imagenet_words(engine, collection, ranked))


def link_imagenet(
    engine: Engine,
    collection: str,
    source: str | Path | None = None,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = None,
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    create: bool = False,
    add_images: bool = False,
) -> ImagenetLinkReport:
    """Link a collection's images to the top-10 ImageNet words of ``backbone``'s own ImageNet head:
    on the collection's images (features from the feature cache) or, with ``source``, on a
    ``.npz`` of labelled features (of that backbone) or images (`semret.vision.arrays`)."""
    from semret.vision.backbones import make_backbone  # torch: only when words are predicted
    from semret.vision.features import extract_features
    from semret.vision.imagenet import imagenet_class_names, imagenet_probabilities

    if source is None:
        found = collection_features(
            engine, collection, backbone, weights, image_size, cache_dir=cache_dir, progress=progress
        )
        network, arrays, labels = found.network, found.arrays, None  # the collection's labels stay
    else:
        arrays = read_labelled_arrays(source)
        network = make_backbone(backbone, weights, image_size, seed=0)
        labels = arrays.label_names()
    if network.imagenet_head is None:
        raise SemretError(
            f"backbone {network.name} (weights {network.weights}) has no ImageNet classifier: use one with "
            "ImageNet weights (efficientnet-lite0, resnet18/34/50, alexnet)"
        )
    features = arrays.data
    if arrays.kind == "images":
        features = extract_features(network, arrays.data, progress=progress, cache_dir=cache_dir)
    probabilities = imagenet_probabilities(network, features)
    return link_imagenet_probabilities(
        engine,
        collection,
        arrays.image_ids,
        probabilities,
        imagenet_class_names(),
        labels,
        network.name,
        create=create,
        add_images=add_images,
    )


def build_published_graph(
    engine: Engine,
    collection: str,
    top_iwk: int = 4,
    top_wwk: int = 4,
    label_strength: float = 1.0,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> PublishedBuildReport:
    """Build (or rebuild) the published IWAN graph of a collection from its ImageNet words, labels
    and the loaded norms; the label fallback uses ``aliases`` (default: the collection's dataset's)."""
    settings = PublishedIwanSettings(top_iwk=top_iwk, top_wwk=top_wwk, label_strength=label_strength)
    table = aliases if aliases is not None else collection_aliases(engine, collection)
    return build_published_iwan_graph(engine, collection, settings, table)
