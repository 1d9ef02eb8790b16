"""`SemanticHasher`: train the hash network, encode images to embeddings and binary codes.

scikit-learn habits: parameters in ``__init__``, ``fit`` learns, learned state ends in ``_``.
Two modes (Barz & Denzler 2019; Lin et al. 2015):

- frozen encoder (the CPU default): features are computed once (or given) and only the hash and
  embedding layers are trained: fast;
- end-to-end fine-tuning (``finetune=True``): the encoder is trained too, on the images.

Training is seeded and reproducible (same data, parameters and seed give the same weights on the
same machine). `save` writes a checkpoint with the full config; `load` checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from semret.errors import SemretError
from semret.hashing.codes import codes_from_activations
from semret.hashing.network import HashNetwork, hash_loss, load_weights, read_checkpoint, save_checkpoint
from semret.vision.backbones import Backbone, make_backbone

#: progress(stage, done, total): stage is "features", "training" (done = batches) or "encoding".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class HasherConfig:
    """Everything that defines a hash model; stored in its checkpoint."""

    n_bits: int = 48
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    classification_weight: float = 0.0
    backbone: str | None = None
    backbone_weights: str | None = None
    finetune: bool = False
    seed: int = 0


@dataclass
class EncodedImages:
    """What the network gives per image: the unit-norm embedding and the packed binary code."""

    embeddings: npt.NDArray[np.float32]
    codes: npt.NDArray[np.uint8]


class SemanticHasher:
    """Maps images (or their features) onto class embeddings through an h-bit sigmoid hash layer."""

    def __init__(
        self,
        n_bits: int = 48,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        classification_weight: float = 0.0,
        backbone: str | None = None,
        backbone_weights: str | None = None,
        finetune: bool = False,
        seed: int = 0,
    ) -> None:
        self.config = HasherConfig(
            n_bits,
            epochs,
            batch_size,
            learning_rate,
            momentum,
            weight_decay,
            classification_weight,
            backbone,
            backbone_weights,
            finetune,
            seed,
        )
        _validate(self.config)

    # --- inputs ------------------------------------------------------------------------------

    def _backbone(self) -> Backbone | None:
        if self.config.backbone is None:
            return None
        if not hasattr(self, "backbone_"):
            self.backbone_ = make_backbone(self.config.backbone, self.config.backbone_weights)
        return self.backbone_

    def _features(self, inputs: npt.NDArray[Any], progress: Progress | None, stage: str) -> torch.Tensor:
        """Features of images through the frozen backbone, or the given features themselves."""
        backbone = self._backbone()
        if backbone is None:
            array = np.asarray(inputs, dtype=np.float32)
            if array.ndim != 2 or not np.isfinite(array).all():
                raise SemretError(f"features must be a finite (n, dims) array, got shape {array.shape}")
            return torch.from_numpy(array)
        backbone.module.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(inputs), self.config.batch_size):
                chunks.append(backbone.module(backbone.preprocess(inputs[start : start + self.config.batch_size])))
                if progress:
                    progress(stage, min(start + self.config.batch_size, len(inputs)), len(inputs))
        return torch.cat(chunks) if chunks else torch.empty(0, backbone.feature_dim)

    # --- training ----------------------------------------------------------------------------

    def fit(
        self,
        inputs: npt.NDArray[Any],
        labels: npt.ArrayLike,
        class_embeddings: npt.ArrayLike,
        class_names: Sequence[str],
        progress: Progress | None = None,
    ) -> SemanticHasher:
        """Train on images (uint8, with a backbone) or features (float, without one).

        ``labels`` are class indices into ``class_names`` and the rows of ``class_embeddings``.
        """
        config = self.config
        targets = torch.as_tensor(np.asarray(class_embeddings, dtype=np.float32))
        label_tensor = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if targets.ndim != 2 or targets.shape[0] != len(class_names):
            raise SemretError(f"class embeddings must be ({len(class_names)}, d), got {tuple(targets.shape)}")
        if len(label_tensor) != len(inputs) or len(inputs) == 0:
            raise SemretError(f"{len(inputs)} training inputs but {len(label_tensor)} labels")
        if label_tensor.min() < 0 or label_tensor.max() >= len(class_names):
            raise SemretError(f"labels must be class indices in 0..{len(class_names) - 1}")
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        backbone = self._backbone()
        if config.finetune and backbone is None:
            raise SemretError("fine-tuning needs a backbone (and images, not features)")
        if config.finetune:
            assert backbone is not None
            images = np.asarray(inputs)
            feature_dim, encoder = backbone.feature_dim, backbone.module

            def batch_of(chosen: torch.Tensor) -> torch.Tensor:  # preprocess per batch: bounded memory
                return backbone.preprocess(images[chosen.numpy()])

        else:
            features = self._features(inputs, progress, "features")
            feature_dim, encoder = features.shape[1], None

            def batch_of(chosen: torch.Tensor) -> torch.Tensor:
                return features[chosen]

        n_classes = len(class_names) if config.classification_weight else 0
        network = HashNetwork(feature_dim, config.n_bits, targets.shape[1], n_classes, encoder)
        optimiser = torch.optim.SGD(
            network.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        batches = (len(inputs) + config.batch_size - 1) // config.batch_size
        self.loss_history_: list[float] = []
        network.train()
        for epoch in range(config.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            total = 0.0
            for batch in range(batches):
                chosen = order[batch * config.batch_size : (batch + 1) * config.batch_size]
                _, embeddings = network(batch_of(chosen))
                loss = hash_loss(network, embeddings, label_tensor[chosen], targets, config.classification_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chosen)
                if progress:
                    progress("training", epoch * batches + batch + 1, config.epochs * batches)
            self.loss_history_.append(total / len(inputs))
        network.eval()
        self.network_ = network
        self.feature_dim_ = feature_dim
        self.class_names_ = list(class_names)
        self.class_embeddings_ = targets.numpy()
        return self

    # --- use ---------------------------------------------------------------------------------

    def encode(self, inputs: npt.NDArray[Any], progress: Progress | None = None) -> EncodedImages:
        """Embeddings (unit norm, float32) and packed codes (hash layer > 0.5) of images or features."""
        network = self._fitted()
        if self.config.finetune:
            backbone = self._backbone()
            assert backbone is not None
            images = np.asarray(inputs)

            def batch_of(start: int) -> torch.Tensor:
                return backbone.preprocess(images[start : start + self.config.batch_size])

        else:
            data = self._features(inputs, progress, "features")

            def batch_of(start: int) -> torch.Tensor:
                return data[start : start + self.config.batch_size]

            if data.shape[1] != self.feature_dim_:
                raise SemretError(
                    f"the inputs have {data.shape[1]} features, the model expects {self.feature_dim_} "
                    f"(backbone {self.config.backbone or 'none: features given'})"
                )
        embeddings, activations = [], []
        with torch.no_grad():
            for start in range(0, len(inputs), self.config.batch_size):
                hashed, embedded = network(batch_of(start))
                activations.append(hashed.numpy())
                embeddings.append(embedded.numpy())
                if progress:
                    progress("encoding", min(start + self.config.batch_size, len(inputs)), len(inputs))
        hashed_all = np.concatenate(activations) if activations else np.empty((0, self.config.n_bits))
        embedded_all = np.concatenate(embeddings) if embeddings else np.empty((0, self.class_embeddings_.shape[1]))
        return EncodedImages(embedded_all.astype(np.float32), codes_from_activations(hashed_all))

    def predict_classes(self, inputs: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The class whose embedding is nearest (cosine) to each input's embedding."""
        encoded = self.encode(inputs)
        return np.argmax(encoded.embeddings @ self.class_embeddings_.T, axis=1)

    def _fitted(self) -> HashNetwork:
        if not hasattr(self, "network_"):
            raise SemretError("this hash model is not trained yet: call fit() or load a checkpoint")
        return self.network_

    # --- checkpoints -------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the trained model and its config to ``path`` (atomically)."""
        network = self._fitted()
        extra = {
            "class_names": self.class_names_,
            "class_embeddings": torch.from_numpy(self.class_embeddings_),
            "feature_dim": self.feature_dim_,
        }
        save_checkpoint(path, asdict(self.config), network, extra)

    @classmethod
    def load(cls, path: str | Path, expect: dict[str, Any] | None = None) -> SemanticHasher:
        """Read a checkpoint written by `save`. ``expect`` (config fields) must match what it holds."""
        payload = read_checkpoint(path)
        stored = payload["config"]
        unknown = set(stored) - set(HasherConfig.__dataclass_fields__)
        if unknown:
            raise SemretError(f"{path}: unknown config fields {sorted(unknown)} (written by a newer semret?)")
        differing = {k: (stored.get(k), v) for k, v in (expect or {}).items() if stored.get(k) != v}
        if differing:
            listed = ", ".join(
                f"{k} is {have!r} in the checkpoint, {want!r} expected" for k, (have, want) in differing.items()
            )
            raise SemretError(f"{path}: the checkpoint's config does not match: {listed}")
        hasher = cls(**stored)
        for key in ("class_names", "class_embeddings", "feature_dim"):
            if key not in payload:
                raise SemretError(f"{path}: checkpoint has no {key!r}")
        targets = payload["class_embeddings"]
        n_classes = len(payload["class_names"]) if hasher.config.classification_weight else 0
        encoder = hasher._backbone().module if hasher.config.finetune else None  # type: ignore[union-attr]
        network = HashNetwork(int(payload["feature_dim"]), hasher.config.n_bits, targets.shape[1], n_classes, encoder)
        load_weights(network, payload["state_dict"], str(path))
        network.eval()
        hasher.network_ = network
        hasher.feature_dim_ = int(payload["feature_dim"])
        hasher.class_names_ = list(payload["class_names"])
        hasher.class_embeddings_ = targets.numpy()
        return hasher


def _validate(config: HasherConfig) -> None:
    checks = [
        (1 <= config.n_bits <= 1024, f"n_bits must be between 1 and 1024, got {config.n_bits}"),
        (config.epochs >= 1, f"epochs must be at least 1, got {config.epochs}"),
        (config.batch_size >= 1, f"batch size must be at least 1, got {config.batch_size}"),
        (config.learning_rate > 0, f"learning rate must be positive, got {config.learning_rate}"),
        (0 <= config.momentum < 1, f"momentum must be in [0, 1), got {config.momentum}"),
        (config.classification_weight >= 0, "the classification weight must not be negative"),
    ]
    for ok, message in checks:
        if not ok:
            raise SemretError(message)
