"""Image -> word links of IWAN: each image's top words from its predicted class probabilities.

Any classifier can be the source: predictions arrive as arrays (image ids, an images x classes
probability matrix, the class names), are mapped to norm words through a `Vocabulary`, and each
image keeps its strongest words (up to the maximum top-IWK, so a graph can later use fewer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.errors import SemretError
from semret.iwan.graph import MAX_TOP_K
from semret.iwan.vocabulary import Vocabulary
from semret.sql.bulk import MergeCounts
from semret.sql.images_store import RankedWords, check_image_ids, store_image_words, store_images
from semret.sql.norms_store import known_words
from semret.vision.arrays import load_npz


def ranked_words_from_probabilities(
    image_ids: npt.ArrayLike, probabilities: npt.ArrayLike, class_words: Sequence[Sequence[str]], top: int
) -> RankedWords:
    """Each image's ``top`` words from its class probabilities (IWAN's image -> word links).

    A word's strength is the summed probability of the classes that map to it (capped at 1), so
    two classes sharing a word pool their evidence; ties are broken by the word.
    """
    ids = check_image_ids(image_ids)
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(ids) or scores.shape[1] != len(class_words):
        raise SemretError(
            f"probabilities must have shape (images, classes) = ({len(ids)}, {len(class_words)}), got {scores.shape}"
        )
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise SemretError("probabilities must be finite and non-negative")
    vocabulary = sorted({w for words in class_words for w in words})
    column = {w: j for j, w in enumerate(vocabulary)}
    to_words = np.zeros((len(class_words), len(vocabulary)))
    for c, words in enumerate(class_words):
        for w in words:
            to_words[c, column[w]] = 1.0
    word_scores = np.minimum(scores @ to_words, 1.0)
    # vocabulary is sorted, so a stable sort on -score breaks ties by word
    order = np.argsort(-word_scores, axis=1, kind="stable")[:, :top]
    chosen_words: list[list[str]] = []
    chosen_strengths: list[list[float]] = []
    for row, columns in enumerate(order):
        keep = [j for j in columns if word_scores[row, j] > 0]
        chosen_words.append([vocabulary[j] for j in keep])
        chosen_strengths.append([float(word_scores[row, j]) for j in keep])
    return RankedWords(ids, chosen_words, chosen_strengths)


@dataclass(frozen=True)
class Predictions:
    """A classifier's output for a set of images."""

    image_ids: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float64]
    class_names: list[str]
    labels: list[str | None]


def read_predictions(path: str | Path) -> Predictions:
    """Predictions from a ``.npz`` file with arrays ``image_ids`` (n), ``probabilities`` (n x c),
    ``class_names`` (c) and optionally ``labels`` (n; class names or class indices)."""
    file = Path(path)
    arrays = load_npz(file, ("image_ids", "probabilities", "class_names"))
    class_names = [str(name) for name in arrays["class_names"]]
    labels: list[str | None] = [None] * len(arrays["image_ids"])
    if "labels" in arrays:
        raw = arrays["labels"]
        if np.issubdtype(raw.dtype, np.integer):
            if len(raw) and (raw.min() < 0 or raw.max() >= len(class_names)):
                raise SemretError(f"{file}: labels must be class indices below {len(class_names)}")
            labels = [class_names[int(i)] for i in raw]
        else:
            labels = [str(label) for label in raw]
        if len(labels) != len(arrays["image_ids"]):
            raise SemretError(f"{file}: {len(labels)} labels for {len(arrays['image_ids'])} images")
    return Predictions(check_image_ids(arrays["image_ids"]), arrays["probabilities"], class_names, labels)


@dataclass(frozen=True)
class LinkReport:
    """What linking a collection's images to words did."""

    vocabulary: Vocabulary
    images: MergeCounts
    image_words: MergeCounts


def link_predictions(
    engine: Engine,
    collection: str,
    predictions: Predictions,
    aliases: Mapping[str, Sequence[str]] | None = None,
    words_per_image: int = MAX_TOP_K,
) -> LinkReport:
    """Store a collection's images and each image's top words from its class probabilities.

    Every class name must map to a word of the loaded norms (the error names those that do not).
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
    images = store_images(engine, collection, predictions.image_ids, predictions.labels)
    words = store_image_words(engine, collection, ranked)
    return LinkReport(vocabulary, images, words)
