"""`SemanticHasher`: train the hash network, encode images to embeddings and binary codes.

scikit-learn habits: parameters in ``__init__`` (validated there, read back by `get_params`),
``fit`` learns, learned state ends in ``_``. Two modes (Barz & Denzler 2019; Lin et al. 2015):

- frozen encoder (the CPU default): features are computed once (or given) and only the hash and
  embedding layers are trained: fast;
- end-to-end fine-tuning (``finetune=True``): the encoder is trained too, on the images.

Training is seeded and reproducible (same data, parameters and seed give the same weights on the
same machine) and leaves torch's global random state as it was. `save` writes a checkpoint with
`get_params` as its config; `load` checks it and rebuilds the hasher from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from semret.core.codes import codes_from_activations
from semret.core.params import Configurable, check_is_fitted
from semret.core.validation import (
    check_choice,
    check_count,
    check_finite_array,
    check_fraction,
    check_labels,
    check_non_negative,
    check_positive,
    check_seed,
)
from semret.errors import SemretError
from semret.hashing.network import HashNetwork, hash_loss, load_weights, read_checkpoint, save_checkpoint
from semret.vision.backbones import BACKBONES, Backbone, make_backbone, torch_seeded

#: progress(stage, done, total): stage is "features", "training" (done = batches) or "encoding".
Progress = Callable[[str, int, int], None]


@dataclass
class EncodedImages:
    """What the network gives per image: the unit-norm embedding and the packed binary code."""

    embeddings: npt.NDArray[np.float32]
    codes: npt.NDArray[np.uint8]


class SemanticHasher(Configurable):
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
        self.n_bits = check_count("n_bits", n_bits, 1, 1024)
        self.epochs = check_count("epochs", epochs)
        self.batch_size = check_count("batch size", batch_size)
        self.learning_rate = check_positive("learning rate", learning_rate)
        self.momentum = check_fraction("momentum", momentum)
        self.weight_decay = check_non_negative("weight decay", weight_decay)
        self.classification_weight = check_non_negative("classification weight", classification_weight)
        self.backbone = None if backbone is None else check_choice("backbone", backbone, tuple(BACKBONES))
        self.backbone_weights = backbone_weights
        self.finetune = bool(finetune)
        self.seed = check_seed(seed)

    # --- inputs ------------------------------------------------------------------------------

    def _new_backbone(self) -> Backbone | None:
        """A fresh backbone, or None; its random initial weights (weights 'none') come from the
        global generator, so callers draw them inside `torch_seeded`."""
        return None if self.backbone is None else make_backbone(self.backbone, self.backbone_weights)

    def _backbone(self) -> Backbone | None:
        """The backbone, made once: `fit` makes it, or else it is made here with the same initial
        weights (the first draws from ``seed``), so that a frozen random backbone gives the same
        features after `load` as in training."""
        if self.backbone is not None and getattr(self, "backbone_", None) is None:
            with torch_seeded(self.seed):
                self.backbone_ = self._new_backbone()
        return getattr(self, "backbone_", None)

    def _features(self, inputs: npt.NDArray[Any], progress: Progress | None, stage: str) -> torch.Tensor:
        """Features of images through the frozen backbone, or the given features themselves."""
        backbone = self._backbone()
        if backbone is None:
            return torch.from_numpy(check_finite_array("features", inputs, 2))
        backbone.module.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(inputs), self.batch_size):
                chunks.append(backbone.module(backbone.preprocess(inputs[start : start + self.batch_size])))
                if progress:
                    progress(stage, min(start + self.batch_size, len(inputs)), len(inputs))
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
        Sets ``network_``, ``feature_dim_``, ``class_names_``, ``class_embeddings_``,
        ``loss_history_`` (mean training loss per epoch) and, with a backbone, ``backbone_``.
        """
        targets = torch.from_numpy(check_finite_array("class embeddings", class_embeddings, 2))
        if targets.shape[0] != len(class_names):
            raise SemretError(f"class embeddings must be ({len(class_names)}, d), got {tuple(targets.shape)}")
        label_tensor = torch.from_numpy(check_labels(labels, len(class_names)))
        if len(label_tensor) != len(inputs) or len(inputs) == 0:
            raise SemretError(f"{len(inputs)} training inputs but {len(label_tensor)} labels")
        if self.finetune and self.backbone is None:
            raise SemretError("fine-tuning needs a backbone (and images, not features)")
        # Random draws from the seed, the global state untouched: the backbone's initial weights
        # (as `_backbone` makes them), then the hash network's, then dropout while training; the
        # order of the batches from a local generator.
        with torch_seeded(self.seed):
            self.backbone_ = self._new_backbone()
            self._train(inputs, label_tensor, targets, class_names, progress)
        return self

    def _train(
        self,
        inputs: npt.NDArray[Any],
        label_tensor: torch.Tensor,
        targets: torch.Tensor,
        class_names: Sequence[str],
        progress: Progress | None,
    ) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        backbone = self.backbone_
        if self.finetune:
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

        n_classes = len(class_names) if self.classification_weight else 0
        network = HashNetwork(feature_dim, self.n_bits, targets.shape[1], n_classes, encoder)
        optimiser = torch.optim.SGD(
            network.parameters(), lr=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay
        )
        batches = (len(inputs) + self.batch_size - 1) // self.batch_size
        loss_history: list[float] = []
        network.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            total = 0.0
            for batch in range(batches):
                chosen = order[batch * self.batch_size : (batch + 1) * self.batch_size]
                _, embeddings = network(batch_of(chosen))
                loss = hash_loss(network, embeddings, label_tensor[chosen], targets, self.classification_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chosen)
                if progress:
                    progress("training", epoch * batches + batch + 1, self.epochs * batches)
            loss_history.append(total / len(inputs))
        network.eval()
        self.network_ = network
        self.feature_dim_ = feature_dim
        self.class_names_ = list(class_names)
        self.class_embeddings_ = targets.numpy()
        self.loss_history_ = loss_history

    # --- use ---------------------------------------------------------------------------------

    def encode(self, inputs: npt.NDArray[Any], progress: Progress | None = None) -> EncodedImages:
        """Embeddings (unit norm, float32) and packed codes (hash layer > 0.5) of images or features."""
        network = self._fitted()
        if self.finetune:
            backbone = self._backbone()
            assert backbone is not None
            images = np.asarray(inputs)

            def batch_of(start: int) -> torch.Tensor:
                return backbone.preprocess(images[start : start + self.batch_size])

        else:
            data = self._features(inputs, progress, "features")

            def batch_of(start: int) -> torch.Tensor:
                return data[start : start + self.batch_size]

            if data.shape[1] != self.feature_dim_:
                raise SemretError(
                    f"the inputs have {data.shape[1]} features, the model expects {self.feature_dim_} "
                    f"(backbone {self.backbone or 'none: features given'})"
                )
        embeddings, activations = [], []
        with torch.no_grad():
            for start in range(0, len(inputs), self.batch_size):
                hashed, embedded = network(batch_of(start))
                activations.append(hashed.numpy())
                embeddings.append(embedded.numpy())
                if progress:
                    progress("encoding", min(start + self.batch_size, len(inputs)), len(inputs))
        hashed_all = np.concatenate(activations) if activations else np.empty((0, self.n_bits))
        embedded_all = np.concatenate(embeddings) if embeddings else np.empty((0, self.class_embeddings_.shape[1]))
        return EncodedImages(embedded_all.astype(np.float32), codes_from_activations(hashed_all))

    def predict_classes(self, inputs: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The class whose embedding is nearest (cosine) to each input's embedding."""
        encoded = self.encode(inputs)
        return np.argmax(encoded.embeddings @ self.class_embeddings_.T, axis=1)

    def _fitted(self) -> HashNetwork:
        try:
            check_is_fitted(self, "network_")
        except SemretError:  # the words users (and the tests) know for this model
            raise SemretError("this hash model is not trained yet: call fit() or load a checkpoint") from None
        return self.network_

    # --- checkpoints -------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the trained model and its parameters (`get_params`) to ``path`` (atomically)."""
        network = self._fitted()
        extra = {
            "class_names": self.class_names_,
            "class_embeddings": torch.from_numpy(self.class_embeddings_),
            "feature_dim": self.feature_dim_,
        }
        save_checkpoint(path, self.get_params(), network, extra)

    @classmethod
    def load(cls, path: str | Path, expect: dict[str, Any] | None = None) -> SemanticHasher:
        """Read a checkpoint written by `save`. ``expect`` (parameters) must match what it holds."""
        payload = read_checkpoint(path)
        stored = payload["config"]
        if not isinstance(stored, dict):
            raise SemretError(f"{path}: the checkpoint's config is not a mapping of parameters")
        unknown = set(stored) - set(cls.param_names())
        if unknown:
            raise SemretError(f"{path}: unknown config fields {sorted(unknown)} (written by a newer semret?)")
        differing = {k: (stored.get(k), v) for k, v in (expect or {}).items() if stored.get(k) != v}
        if differing:
            listed = ", ".join(
                f"{k} is {have!r} in the checkpoint, {want!r} expected" for k, (have, want) in differing.items()
            )
            raise SemretError(f"{path}: the checkpoint's config does not match: {listed}")
        try:
            hasher = cls(**stored)
        except SemretError as exc:
            raise SemretError(f"{path}: {exc}") from exc
        for key in ("class_names", "class_embeddings", "feature_dim"):
            if key not in payload:
                raise SemretError(f"{path}: checkpoint has no {key!r}")
        targets = payload["class_embeddings"]
        n_classes = len(payload["class_names"]) if hasher.classification_weight else 0
        encoder = hasher._backbone().module if hasher.finetune else None  # type: ignore[union-attr]
        with torch_seeded(hasher.seed):  # initial weights, replaced by the stored ones: the global state untouched
            network = HashNetwork(int(payload["feature_dim"]), hasher.n_bits, targets.shape[1], n_classes, encoder)
        load_weights(network, payload["state_dict"], str(path))
        network.eval()
        hasher.network_ = network
        hasher.feature_dim_ = int(payload["feature_dim"])
        hasher.class_names_ = list(payload["class_names"])
        hasher.class_embeddings_ = targets.numpy()
        return hasher
