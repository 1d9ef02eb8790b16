"""Class probabilities for a stored collection: the word source IWAN links images with.

A `semret.vision.classifier.FeatureClassifier` is trained on the features of the collection's train
split (or of another, training collection) and predicts every image of the collection; the
predictions are what `semret iwan link` takes, as a file or linked in the store straight away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from semret.app.features import DEFAULT_BACKBONE, CollectionFeatures, collection_features
from semret.errors import SemretError
from semret.iwan.links import Predictions

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Classification:
    """A collection's predictions and how the classifier that made them was trained."""

    predictions: Predictions
    collection: str
    train_collection: str
    train_images: int
    #: The classifier's accuracy on its own training images, and on the collection's labelled images.
    train_accuracy: float
    accuracy: float
    features: CollectionFeatures
    #: The trained `semret.vision.classifier.FeatureClassifier` (what `save_classifier` writes).
    classifier: Any = None


def save_classifier(found: Classification, path: str | Path) -> Path:
    """Write the classifier that made ``found``'s predictions, with the backbone its features came
    through (what `semret attack --model` takes)."""
    features = found.features
    source = {"backbone": features.backbone, "weights": features.weights, "image_size": features.image_size}
    if features.network.weights not in ("imagenet", "none"):  # a weights file: where it was, to find it again
        source["weights_file"] = str(Path(features.network.weights).resolve())
    found.classifier.save(path, feature_source=source)
    return Path(path)


def classify_collection(
    engine: Engine,
    collection: str,
    train_collection: str | None = None,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = None,
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    hidden: int = 0,
    epochs: int = 30,
    seed: int = 0,
    progress: Progress | None = None,
) -> Classification:
    """Train a feature classifier and predict the class probabilities of every image of ``collection``.

    It trains on the images of ``train_collection`` if given, else on the collection's own train
    split; the features of both come through ``backbone`` from the feature cache
    (`semret.app.features.collection_features`).
    """
    from semret.vision.classifier import FeatureClassifier  # torch

    target = collection_features(
        engine, collection, backbone, weights, image_size, cache_dir=cache_dir, progress=progress
    )
    if train_collection is None:
        rows = np.array([split == "train" for split in target.splits])
        if not rows.any():
            raise SemretError(
                f"collection {collection!r} has no train images to train the classifier on: give a training "
                "collection (--train-collection), e.g. the dataset's train split imported with "
                "`semret collection import --split train`"
            )
        train_features, train_labels = target.arrays.data[rows], target.arrays.labels[rows]
        train_name = collection
    else:
        train = collection_features(engine, train_collection, target.network, cache_dir=cache_dir, progress=progress)
        if train.arrays.class_names != target.arrays.class_names:
            raise SemretError(
                f"collections {train_collection!r} and {collection!r} have different classes: train on images "
                "of the same dataset"
            )
        train_features, train_labels = train.arrays.data, train.arrays.labels
        train_name = train_collection
    class_names = target.arrays.class_names
    classifier = FeatureClassifier(hidden=hidden, epochs=epochs, seed=seed)
    classifier.fit(train_features, train_labels, len(class_names), progress=progress)
    probabilities = classifier.predict_proba(target.arrays.data)
    predicted = np.argmax(probabilities, axis=1)
    predictions = Predictions(
        target.arrays.image_ids, probabilities, list(class_names), list(target.arrays.label_names())
    )
    return Classification(
        predictions,
        collection,
        train_name,
        len(train_labels),
        float(np.mean(classifier.predict(train_features) == train_labels)),
        float(np.mean(predicted == target.arrays.labels)),
        target,
        classifier,
    )
