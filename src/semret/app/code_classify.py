"""Classification from hash codes: how much of the classes a model's codes carry (seed 004).

Seed 004 trained CIMON's codes without labels, then "a small MLP" on the 128-bit codes of STL-10's
5,000 training images with cross entropy, and reported the test accuracy (86.56%). Here the codes
are a stored hash model's (`semret hash encode`), read from the store; each code's bits become
+-1 inputs of a `semret.vision.classifier.FeatureClassifier` (one hidden ReLU layer by default,
Adam, cross entropy), trained on the collection's train split (or on another collection), tested
on its test split. The confusion matrix is scikit-learn's.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.core.codes import unpack_codes
from semret.errors import SemretError
from semret.sql.hash_store import StoredHashes, load_hashes, model_by_name
from semret.sql.images_store import collection_images

Progress = Callable[[str, int, int], None]
#: The hidden layer of the classifier on codes unless told (seed 004: "a small MLP").
DEFAULT_HIDDEN = 256


@dataclass(frozen=True)
class CodeClassification:
    """How well a classifier on a model's codes predicts the classes."""

    model: str
    n_bits: int
    collection: str
    train_collection: str
    class_names: list[str]
    train_images: int
    test_images: int
    train_accuracy: float
    test_accuracy: float
    #: (classes, classes) test counts: row = true class, column = predicted (scikit-learn's order).
    confusion: npt.NDArray[np.int64]
    train_seconds: float


def code_features(codes: npt.NDArray[np.uint8], n_bits: int) -> npt.NDArray[np.float32]:
    """Packed codes as (n, n_bits) +-1 float32 inputs."""
    return unpack_codes(codes, n_bits).astype(np.float32) * 2 - 1


def _labelled(stored: StoredHashes, where: str) -> npt.NDArray[np.bool_]:
    known = np.array([label is not None for label in stored.labels], dtype=np.bool_)
    if not known.any():
        raise SemretError(f"{where} has no labelled images with codes")
    return known


def _class_order(dataset: str | None, labels: set[str]) -> list[str]:
    """The classes in the dataset's own order where the collection names a known dataset that
    has them all, else sorted by name."""
    from semret.vision.datasets import dataset_info

    if dataset is not None:
        try:
            known = dataset_info(dataset).class_names
        except SemretError:
            known = []
        if labels <= set(known):
            return [name for name in known if name in labels]
    return sorted(labels)


def accuracy_from_codes(
    train_codes: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    test_codes: npt.NDArray[np.uint8],
    test_labels: npt.NDArray[np.int64],
    n_bits: int,
    n_classes: int,
    hidden: int = DEFAULT_HIDDEN,
    epochs: int = 30,
    seed: int = 0,
) -> float:
    """The test accuracy of the classifier `classify_from_codes` trains, on packed codes given as
    arrays (``semret eval`` reports it for each method that makes codes)."""
    from semret.vision.classifier import FeatureClassifier  # torch

    classifier = FeatureClassifier(hidden=hidden, epochs=epochs, seed=seed)
    classifier.fit(code_features(train_codes, n_bits), train_labels, n_classes)
    return float(np.mean(classifier.predict(code_features(test_codes, n_bits)) == test_labels))


def classify_from_codes(
    engine: Engine,
    model: str,
    collection: str,
    train_collection: str | None = None,
    hidden: int = DEFAULT_HIDDEN,
    epochs: int = 30,
    seed: int = 0,
    progress: Progress | None = None,
) -> CodeClassification:
    """Train a classifier on the codes of ``model`` and test it.

    Without ``train_collection``: trained on the codes of ``collection``'s train split, tested on
    its test split. With it: trained on that collection's labelled codes, tested on the test split
    of ``collection`` if it has one, else on all of its labelled codes; images that are test
    images too (the same collection, or collections of one dataset) are left out of the training.
    """
    from sklearn.metrics import confusion_matrix

    from semret.vision.classifier import FeatureClassifier  # torch

    stored_model = model_by_name(engine, model)
    target = load_hashes(engine, stored_model, collection)
    known = _labelled(target, f"collection {collection!r}")
    images = collection_images(engine, collection)
    splits = dict(zip(images.image_ids.tolist(), images.splits, strict=True))
    target_splits = np.array([splits.get(int(i)) for i in target.image_ids], dtype=object)
    if train_collection is None:
        train_rows = known & (target_splits == "train")
        test_rows = known & (target_splits == "test")
        if not train_rows.any() or not test_rows.any():
            raise SemretError(
                f"collection {collection!r} needs codes of both train and test images to train and test on "
                f"({int(train_rows.sum())} train, {int(test_rows.sum())} test): encode both splits, or give "
                "--train-collection"
            )
        train = target
        train_name = collection
    else:
        train = load_hashes(engine, stored_model, train_collection)
        train_rows = _labelled(train, f"collection {train_collection!r}")
        test_rows = known & (target_splits == "test")
        if not test_rows.any():
            test_rows = known
        train_name = train_collection
        # the same images (the same collection, or one of the same dataset, whose ids name the
        # same images) never train and test at once
        same_images = train_collection == collection or (
            images.dataset is not None and images.dataset == collection_images(engine, train_collection).dataset
        )
        if same_images:
            train_rows &= ~np.isin(train.image_ids, target.image_ids[test_rows])
            if not train_rows.any():
                raise SemretError(
                    f"every labelled image of {train_collection!r} is a test image of {collection!r}: "
                    "train on other images"
                )
    train_labels = [str(label) for label, keep in zip(train.labels, train_rows, strict=True) if keep]
    test_labels = [str(label) for label, keep in zip(target.labels, test_rows, strict=True) if keep]
    class_names = _class_order(images.dataset, set(train_labels))
    unseen = sorted(set(test_labels) - set(class_names))
    if unseen:
        raise SemretError(
            f"test labels {', '.join(unseen[:5])} never occur in the training images: "
            "train on images of the same classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    y_train = np.array([index[label] for label in train_labels], dtype=np.int64)
    y_test = np.array([index[label] for label in test_labels], dtype=np.int64)
    x_train = code_features(train.codes[train_rows], stored_model.n_bits)
    x_test = code_features(target.codes[test_rows], stored_model.n_bits)
    classifier = FeatureClassifier(hidden=hidden, epochs=epochs, seed=seed)
    start = time.process_time()
    classifier.fit(x_train, y_train, len(class_names), progress=progress)
    train_seconds = time.process_time() - start
    predicted = classifier.predict(x_test)
    confusion = confusion_matrix(y_test, predicted, labels=np.arange(len(class_names))).astype(np.int64)
    return CodeClassification(
        model,
        stored_model.n_bits,
        collection,
        train_name,
        class_names,
        len(y_train),
        len(y_test),
        float(np.mean(classifier.predict(x_train) == y_train)),
        float(np.mean(predicted == y_test)),
        confusion,
        train_seconds,
    )


def plot_confusion(found: CodeClassification, path: str | Path) -> Path:
    """The test confusion matrix as a PNG (scikit-learn's ConfusionMatrixDisplay, matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    size = max(5.0, 0.55 * len(found.class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    try:
        ConfusionMatrixDisplay(found.confusion, display_labels=found.class_names).plot(
            ax=axes, xticks_rotation=60, colorbar=False, cmap="Blues"
        )
        title = (
            f"{found.model} ({found.n_bits}-bit codes) on {found.collection}: test accuracy "
            f"{found.test_accuracy:.3f} on {found.test_images:,} images; trained on {found.train_images:,} "
            f"of {found.train_collection}"
        )
        axes.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
        figure.tight_layout()
        figure.savefig(file, dpi=120)
    finally:
        plt.close(figure)
    return file
