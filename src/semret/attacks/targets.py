"""What an attack differentiates: pixels in [0, 1] -> backbone -> a trained model, end to end.

- `HashTarget`: the semantic hash network (`semret.hashing.hasher.SemanticHasher`, frozen-feature
  or fine-tuned). Its loss is the model's own training loss, the cosine distance between the
  image's embedding and its class's embedding (Barz & Denzler 2019); its prediction is the class
  whose embedding is nearest; its code is the hash layer thresholded at 0.5.
- `ClassifierTarget`: the feature classifier IWAN takes its words from
  (`semret.vision.classifier.FeatureClassifier`). Its loss is the cross entropy with the true
  class, as in FGSM's paper and seed 003; its outputs are the class probabilities.

Every module is put in eval mode (batch norm's running statistics, no dropout) and its weights
are frozen: an attack changes the pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from semret.core.codes import codes_from_activations
from semret.errors import SemretError
from semret.hashing.hasher import SemanticHasher
from semret.vision.backbones import Backbone
from semret.vision.classifier import FeatureClassifier

#: Images per forward pass when outputs are computed without a gradient.
_BATCH = 64


@dataclass(frozen=True)
class TargetOutputs:
    """What a model makes of a batch of images: its predicted classes and, where it has them,
    class probabilities (a classifier) or embeddings and packed codes (a hash model)."""

    predictions: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float64] | None = None
    embeddings: npt.NDArray[np.float32] | None = None
    codes: npt.NDArray[np.uint8] | None = None


def _frozen(module: nn.Module) -> nn.Module:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class HashTarget:
    """A semantic hash model on top of a backbone: pixels -> embedding and code."""

    kind = "hash"

    def __init__(self, hasher: SemanticHasher, backbone: Backbone | None = None) -> None:
        network = hasher._fitted()
        if hasher.finetune:  # the network holds its own encoder
            backbone = hasher._backbone()
        elif backbone is None:
            raise SemretError("a hash model trained on features needs the backbone those features came through")
        assert backbone is not None
        if not hasher.finetune and backbone.feature_dim != hasher.feature_dim_:
            raise SemretError(
                f"the hash model expects {hasher.feature_dim_} features, backbone {backbone.name} gives "
                f"{backbone.feature_dim}: give the backbone the model was trained on"
            )
        self.hasher, self.backbone, self.network = hasher, backbone, _frozen(network)
        if not hasher.finetune:
            _frozen(backbone.module)
        self.class_names = list(hasher.class_names_)
        self.class_embeddings = torch.from_numpy(np.asarray(hasher.class_embeddings_, dtype=np.float32))

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self.backbone.normalise(pixels)
        return self.network(inputs if self.hasher.finetune else self.backbone.module(inputs))  # type: ignore[no-any-return]

    def loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The cosine distance of each image's embedding to its class's embedding."""
        _, embeddings = self._forward(pixels)
        return 1.0 - (embeddings * self.class_embeddings[labels]).sum(dim=1)

    def outputs(self, pixels: torch.Tensor) -> TargetOutputs:
        hashed, embedded = [], []
        with torch.no_grad():
            for start in range(0, len(pixels), _BATCH):
                activations, embeddings = self._forward(pixels[start : start + _BATCH])
                hashed.append(activations.numpy())
                embedded.append(embeddings.numpy())
        activations_all = np.concatenate(hashed) if hashed else np.empty((0, self.hasher.n_bits), np.float32)
        embeddings_all = np.concatenate(embedded) if embedded else np.empty((0, self.class_embeddings.shape[1]))
        predictions = np.argmax(embeddings_all @ self.class_embeddings.numpy().T, axis=1).astype(np.int64)
        return TargetOutputs(
            predictions, embeddings=embeddings_all.astype(np.float32), codes=codes_from_activations(activations_all)
        )


class ClassifierTarget:
    """A feature classifier on top of a backbone: pixels -> class probabilities."""

    kind = "classifier"

    def __init__(self, classifier: FeatureClassifier, backbone: Backbone, class_names: list[str]) -> None:
        network = classifier._fitted()
        if backbone.feature_dim != classifier.n_features_in_:
            raise SemretError(
                f"the classifier expects {classifier.n_features_in_} features, backbone {backbone.name} gives "
                f"{backbone.feature_dim}: give the backbone it was trained on"
            )
        if len(class_names) != classifier.n_classes_:
            raise SemretError(f"the classifier has {classifier.n_classes_} classes, the images {len(class_names)}")
        self.backbone, self.network = backbone, _frozen(network)
        _frozen(backbone.module)
        self.mean = torch.from_numpy(classifier.mean_)
        self.scale = torch.from_numpy(classifier.scale_)
        self.class_names = list(class_names)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.backbone.module(self.backbone.normalise(pixels))
        return self.network((features - self.mean) / self.scale)  # type: ignore[no-any-return]

    def loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The cross entropy of each image with its true class."""
        return functional.cross_entropy(self.logits(pixels), labels, reduction="none")

    def outputs(self, pixels: torch.Tensor) -> TargetOutputs:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(pixels), _BATCH):
                chunks.append(functional.softmax(self.logits(pixels[start : start + _BATCH]).double(), dim=1).numpy())
        probabilities = np.concatenate(chunks) if chunks else np.empty((0, len(self.class_names)))
        return TargetOutputs(np.argmax(probabilities, axis=1).astype(np.int64), probabilities=probabilities)


AttackTarget = HashTarget | ClassifierTarget
