"""`FeatureClassifier`: the flat classifier on frozen backbone features that IWAN takes its words from.

As in Deng et al.'s flat classifiers on fixed image features, one softmax classifier is trained on
the (standardised) features of the training images; for each image, its top-IWK class
probabilities become the image's IWAN words (`semret.iwan.links`). ``hidden = 0`` is softmax
regression; ``hidden > 0`` adds one ReLU layer of that width.

scikit-learn habits: parameters in ``__init__``, ``fit`` learns, learned state ends in ``_``.
Training (Adam, mini-batches) is seeded and reproducible on the same machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from semret.errors import SemretError
from semret.torch_files import read_semret_file, save_semret_file
from semret.vision.features import Progress

CHECKPOINT_FORMAT = "semret.feature-classifier"
CHECKPOINT_VERSION = 1
_PREDICT_BATCH = 8192


@dataclass(frozen=True)
class ClassifierConfig:
    """A classifier's parameters; stored in its file."""

    hidden: int = 0
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class FeatureClassifier:
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
        self.config = ClassifierConfig(hidden, epochs, batch_size, learning_rate, weight_decay, seed)
        _validate(self.config)

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
        config = self.config
        array = _features(features, "training features")
        targets = _labels(labels, len(array), n_classes)
        classes = int(targets.max()) + 1 if n_classes is None else n_classes
        mean = array.mean(axis=0, dtype=np.float64)
        scale = array.std(axis=0, dtype=np.float64)
        scale[scale < 1e-12] = 1.0  # a constant feature: centred, not scaled
        standardised = torch.from_numpy(((array - mean) / scale).astype(np.float32))
        label_tensor = torch.from_numpy(targets)
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        network = _network(array.shape[1], config.hidden, classes)
        optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.loss_history_: list[float] = []
        network.train()
        for epoch in range(config.epochs):
            total = 0.0
            for chosen in torch.split(torch.randperm(len(array), generator=generator), config.batch_size):
                loss = functional.cross_entropy(network(standardised[chosen]), label_tensor[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chosen)
            self.loss_history_.append(total / len(array))
            if progress:
                progress("training", epoch + 1, config.epochs)
        network.eval()
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
        if not hasattr(self, "network_"):
            raise SemretError("this classifier is not trained yet: call fit() or FeatureClassifier.load()")
        return self.network_

    # --- files -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the trained classifier and its parameters to ``path`` (atomically)."""
        network = self._fitted()
        contents = {
            "config": asdict(self.config),
            "n_classes": self.n_classes_,
            "n_features": self.n_features_in_,
            "mean": torch.from_numpy(self.mean_),
            "scale": torch.from_numpy(self.scale_),
            "state_dict": network.state_dict(),
        }
        save_semret_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, contents)

    @classmethod
    def load(cls, path: str | Path) -> FeatureClassifier:
        """Read a classifier written by `save`; a missing, corrupt or foreign file is a SemretError naming it."""
        file = Path(path)
        payload = _read(file)
        try:
            classifier = cls(**payload["config"])
            n_classes, n_features = int(payload["n_classes"]), int(payload["n_features"])
            mean, scale = payload["mean"].numpy().astype(np.float32), payload["scale"].numpy().astype(np.float32)
            network = _network(n_features, classifier.config.hidden, n_classes)
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
        return classifier


def _network(n_features: int, hidden: int, n_classes: int) -> nn.Module:
    if hidden:
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    return nn.Sequential(nn.Linear(n_features, n_classes))


def _read(file: Path) -> dict[str, Any]:
    payload = read_semret_file(file, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "feature classifier file")
    config = payload.get("config")
    if not isinstance(config, dict) or set(config) - set(ClassifierConfig.__dataclass_fields__):
        raise SemretError(f"{file}: unknown or missing classifier parameters (written by a newer semret?)")
    return payload


def _features(features: npt.ArrayLike, what: str, allow_empty: bool = False) -> npt.NDArray[np.float32]:
    try:
        array = np.asarray(features, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SemretError(f"{what} must be numbers ({exc})") from exc
    if array.ndim != 2 or array.shape[1] == 0 or (len(array) == 0 and not allow_empty):
        raise SemretError(f"{what} must be a non-empty (n, dims) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise SemretError(f"{what} hold NaN or infinite values")
    return array


def _labels(labels: npt.ArrayLike, n: int, n_classes: int | None) -> npt.NDArray[np.int64]:
    array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise SemretError(f"labels must be a 1-d array of class indices, got {array.dtype} {array.shape}")
    if len(array) != n:
        raise SemretError(f"{n} feature rows but {len(array)} labels")
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2):
        raise SemretError(f"n_classes must be an integer of at least 2, got {n_classes!r}")
    if array.min() < 0 or (n_classes is not None and array.max() >= n_classes):
        upper = "n_classes - 1" if n_classes is None else str(n_classes - 1)
        raise SemretError(f"labels must be class indices in 0..{upper}, got {array.min()}..{array.max()}")
    if len(np.unique(array)) < 2:
        raise SemretError("the labels name only one class: a classifier needs at least 2")
    return array.astype(np.int64)


def _validate(config: ClassifierConfig) -> None:
    checks = [
        (_is_int(config.hidden) and config.hidden >= 0, f"hidden must be an integer >= 0, got {config.hidden!r}"),
        (_is_int(config.epochs) and config.epochs >= 1, f"epochs must be an integer >= 1, got {config.epochs!r}"),
        (
            _is_int(config.batch_size) and config.batch_size >= 1,
            f"batch size must be an integer >= 1, got {config.batch_size!r}",
        ),
        (config.learning_rate > 0, f"learning rate must be positive, got {config.learning_rate}"),
        (config.weight_decay >= 0, f"weight decay must not be negative, got {config.weight_decay}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SemretError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
