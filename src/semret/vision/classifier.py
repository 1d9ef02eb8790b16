"""`FeatureClassifier`: the flat classifier on frozen backbone features that IWAN takes its words from.

As in Deng et al.'s flat classifiers on fixed image features, one softmax classifier is trained on
the (standardised) features of the training images; for each image, its top-IWK class
probabilities become the image's IWAN words (`semret.iwan.links`). ``hidden = 0`` is softmax
regression; ``hidden > 0`` adds one ReLU layer of that width.

scikit-learn habits: parameters in ``__init__`` (validated there, read back by `get_params` and
stored in the classifier's file), ``fit`` learns, learned state ends in ``_``. Training (Adam,
mini-batches) is seeded and reproducible on the same machine, and leaves torch's global random
state as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from semret.core.params import Configurable, check_is_fitted
from semret.core.validation import (
    check_count,
    check_finite_array,
    check_labels,
    check_non_negative,
    check_positive,
    check_seed,
)
from semret.errors import SemretError
from semret.torch_files import read_semret_file, save_semret_file
from semret.vision.backbones import torch_seeded
from semret.vision.features import Progress

CHECKPOINT_FORMAT = "semret.feature-classifier"
CHECKPOINT_VERSION = 1
_PREDICT_BATCH = 8192


class FeatureClassifier(Configurable):
    """Softmax classifier (linear, or one hidden ReLU layer) on standardised features."""

    def __init__(
        self,
        hidden: int = 0,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.hidden = check_count("hidden", hidden, 0)
        self.epochs = check_count("epochs", epochs)
        self.batch_size = check_count("batch size", batch_size)
        self.learning_rate = check_positive("learning rate", learning_rate)
        self.weight_decay = check_non_negative("weight decay", weight_decay)
        self.seed = check_seed(seed)

    def fit(
        self,
        features: npt.ArrayLike,
        labels: npt.ArrayLike,
        n_classes: int | None = None,
        progress: Progress | None = None,
    ) -> FeatureClassifier:
        """Learn from features (n, d) and class indices (n,); ``n_classes`` defaults to the largest label + 1.

        progress("training", epoch, epochs). Sets ``n_classes_``, ``mean_``, ``scale_``, ``network_``,
        ``n_features_in_`` and ``loss_history_`` (mean training loss per epoch).
        """
        array = _features(features, "training features")
        targets = _labels(labels, len(array), n_classes)
        classes = int(targets.max()) + 1 if n_classes is None else int(n_classes)
        mean = array.mean(axis=0, dtype=np.float64)
        scale = array.std(axis=0, dtype=np.float64)
        scale[scale < 1e-12] = 1.0  # a constant feature: centred, not scaled
        standardised = torch.from_numpy(((array - mean) / scale).astype(np.float32))
        label_tensor = torch.from_numpy(targets)
        generator = torch.Generator().manual_seed(self.seed)  # the order of the batches
        with torch_seeded(self.seed):  # the initial weights, the global random state untouched
            network = _network(array.shape[1], self.hidden, classes)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_history: list[float] = []
        network.train()
        for epoch in range(self.epochs):
            total = 0.0
            for chosen in torch.split(torch.randperm(len(array), generator=generator), self.batch_size):
                loss = functional.cross_entropy(network(standardised[chosen]), label_tensor[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chosen)
            loss_history.append(total / len(array))
            if progress:
                progress("training", epoch + 1, self.epochs)
        network.eval()
        self.loss_history_ = loss_history
        self.n_classes_ = classes
        self.n_features_in_ = array.shape[1]
        self.mean_ = mean.astype(np.float32)
        self.scale_ = scale.astype(np.float32)
        self.network_ = network
        return self

    def predict_proba(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Class probabilities (n, n_classes_); each row sums to 1."""
        network = self._fitted()
        array = _features(features, "features", allow_empty=True)
        if array.shape[1] != self.n_features_in_:
            raise SemretError(
                f"the features have {array.shape[1]} dimensions, the classifier expects {self.n_features_in_}"
            )
        standardised = (array - self.mean_) / self.scale_
        probabilities = np.empty((len(array), self.n_classes_), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, len(array), _PREDICT_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(standardised[start : start + _PREDICT_BATCH]))
                probabilities[start : start + len(batch)] = functional.softmax(network(batch).double(), dim=1).numpy()
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, features: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The most probable class of each row."""
        return np.argmax(self.predict_proba(features), axis=1).astype(np.int64)

    def _fitted(self) -> nn.Module:
        try:
            check_is_fitted(self, "network_")
        except SemretError:  # the words users (and the tests) know for this model
            raise SemretError("this classifier is not trained yet: call fit() or FeatureClassifier.load()") from None
        return self.network_

    # --- files -------------------------------------------------------------------------------

    def save(self, path: str | Path, feature_source: dict[str, Any] | None = None) -> None:
        """Write the trained classifier and its parameters to ``path`` (atomically).
        ``feature_source`` names the backbone its features came through ({"backbone", "weights",
        "image_size"}), so that a later user of the file (`semret attack`) makes the same features;
        it is kept as ``feature_source_``."""
        network = self._fitted()
        source = feature_source if feature_source is not None else getattr(self, "feature_source_", None)
        contents = {
            "feature_source": dict(source) if source else {},
            "config": self.get_params(),
            "n_classes": self.n_classes_,
            "n_features": self.n_features_in_,
            "mean": torch.from_numpy(self.mean_),
            "scale": torch.from_numpy(self.scale_),
            "state_dict": network.state_dict(),
        }
        save_semret_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, contents)
        self.feature_source_ = dict(source) if source else None

    @classmethod
    def load(cls, path: str | Path) -> FeatureClassifier:
        """Read a classifier written by `save`; a missing, corrupt or foreign file is a SemretError naming it."""
        file = Path(path)
        payload = _read(file)
        try:
            classifier = cls(**payload["config"])
            n_classes, n_features = int(payload["n_classes"]), int(payload["n_features"])
            mean, scale = payload["mean"].numpy().astype(np.float32), payload["scale"].numpy().astype(np.float32)
            with torch_seeded(classifier.seed):  # initial weights, replaced by the stored ones
                network = _network(n_features, classifier.hidden, n_classes)
            network.load_state_dict(payload["state_dict"])
        except SemretError as exc:
            raise SemretError(f"{file}: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise SemretError(f"{file}: not a consistent feature classifier file ({exc})") from exc
        if mean.shape != (n_features,) or scale.shape != (n_features,):
            raise SemretError(f"{file}: the standardisation does not have {n_features} dimensions")
        network.eval()
        classifier.n_classes_, classifier.n_features_in_ = n_classes, n_features
        classifier.mean_, classifier.scale_, classifier.network_ = mean, scale, network
        source = payload.get("feature_source")
        classifier.feature_source_ = dict(source) if isinstance(source, dict) and source else None
        return classifier


def _network(n_features: int, hidden: int, n_classes: int) -> nn.Module:
    if hidden:
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    return nn.Sequential(nn.Linear(n_features, n_classes))


def _read(file: Path) -> dict[str, Any]:
    payload = read_semret_file(file, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "feature classifier file")
    config = payload.get("config")
    if not isinstance(config, dict) or set(config) - set(FeatureClassifier.param_names()):
        raise SemretError(f"{file}: unknown or missing classifier parameters (written by a newer semret?)")
    return payload


def _features(features: npt.ArrayLike, what: str, allow_empty: bool = False) -> npt.NDArray[np.float32]:
    try:
        shape = np.shape(features)
    except ValueError:  # ragged rows: check_finite_array says so
        return check_finite_array(what, features, 2)
    if len(shape) != 2 or shape[1] == 0 or (shape[0] == 0 and not allow_empty):
        raise SemretError(f"{what} must be a non-empty (n, dims) array, got shape {shape}")
    return check_finite_array(what, features, 2)


def _labels(labels: npt.ArrayLike, n: int, n_classes: int | None) -> npt.NDArray[np.int64]:
    if n_classes is not None:
        check_count("n_classes", n_classes, 2)
    array = check_labels(labels, n_classes)
    if len(array) != n:
        raise SemretError(f"{n} feature rows but {len(array)} labels")
    if len(np.unique(array)) < 2:
        raise SemretError("the labels name only one class: a classifier needs at least 2")
    return array
