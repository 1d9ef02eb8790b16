"""Image -> word links of IWAN: each image's top words from its predicted class probabilities.

Any classifier can be the source: predictions arrive as arrays (image ids, an images x classes
probability matrix, the class names), are mapped to norm words through a `Vocabulary`, and each
image keeps its strongest words (up to the maximum top-IWK, so a graph can later use fewer).
Storing the links is `semret.app.iwan.link_predictions`; this module is pure (no SQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_ids
from semret.errors import SemretError
from semret.vision.arrays import load_npz, save_npz


def _image_ids(image_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    ids = np.asarray(image_ids)
    return check_ids(ids, len(ids) if ids.ndim else 0, "image ids")


@dataclass(frozen=True)
class RankedWords:
    """Each image's words, best first: ``words[i]`` and ``strengths[i]`` belong to ``image_ids[i]``."""

    image_ids: npt.NDArray[np.int64]
    words: list[list[str]]
    strengths: list[list[float]]


def ranked_words_from_probabilities(
    image_ids: npt.ArrayLike, probabilities: npt.ArrayLike, class_words: Sequence[Sequence[str]], top: int
) -> RankedWords:
    """Each image's ``top`` words from its class probabilities (IWAN's image -> word links).

    A word's strength is the summed probability of the classes that map to it (capped at 1), so
    two classes sharing a word pool their evidence; ties are broken by the word.
    """
    ids = _image_ids(image_ids)
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
    return Predictions(_image_ids(arrays["image_ids"]), arrays["probabilities"], class_names, labels)


def write_predictions(path: str | Path, predictions: Predictions) -> Path:
    """Write predictions as `read_predictions` reads them (labels as class names, when known)."""
    arrays: dict[str, npt.ArrayLike] = {
        "image_ids": predictions.image_ids,
        "probabilities": predictions.probabilities,
        "class_names": np.array(predictions.class_names),
    }
    if all(label is not None for label in predictions.labels):
        arrays["labels"] = np.array(predictions.labels)
    return save_npz(path, arrays)
