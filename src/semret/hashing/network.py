"""The semantic hash network and its checkpoints.

After Barz & Denzler (WACV 2019), images are mapped onto the embeddings of their classes, and after
Lin et al. (CVPRW 2015, "Deep Learning of Binary Hash Codes for Fast Image Retrieval") a sigmoid
hash layer sits in between, so that its thresholded activations are binary codes:

    encoder features -> Linear -> sigmoid (h units: the hash layer) -> Linear -> d-dim embedding

The loss is the cosine distance between the (L2-normalised) embedding and the embedding of the
image's class, optionally plus a small classification term (a linear softmax classifier on the
embedding). The encoder is optional: without it the network is trained on features computed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from semret.errors import SemretError
from semret.torch_files import read_semret_file, save_semret_file

CHECKPOINT_FORMAT = "semret.hash-model"
CHECKPOINT_VERSION = 1


class HashNetwork(nn.Module):
    """Encoder (optional) + hash layer + embedding layer (+ optional classifier)."""

    def __init__(
        self, feature_dim: int, n_bits: int, embedding_dim: int, n_classes: int = 0, encoder: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.hash_layer = nn.Linear(feature_dim, n_bits)
        self.embedding_layer = nn.Linear(n_bits, embedding_dim)
        self.classifier = nn.Linear(embedding_dim, n_classes) if n_classes else None

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hash activations in (0, 1), unit-norm embeddings) of a batch of inputs."""
        features = self.encoder(inputs) if self.encoder is not None else inputs
        hashed = torch.sigmoid(self.hash_layer(features))
        return hashed, functional.normalize(self.embedding_layer(hashed), dim=1)


def hash_loss(
    network: HashNetwork,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    class_embeddings: torch.Tensor,
    classification_weight: float,
) -> torch.Tensor:
    """Mean cosine distance to the class embeddings, plus ``classification_weight`` x cross-entropy."""
    loss = (1.0 - (embeddings * class_embeddings[labels]).sum(dim=1)).mean()
    if classification_weight and network.classifier is not None:
        loss = loss + classification_weight * functional.cross_entropy(network.classifier(embeddings), labels)
    return loss


def save_checkpoint(path: str | Path, params: dict[str, Any], network: HashNetwork, extra: dict[str, Any]) -> None:
    """Write a checkpoint: the format, semret's version, the model's parameters (under ``config``),
    the weights and ``extra`` (class names and embeddings), readable with ``torch.load(weights_only=True)``."""
    contents = {"config": params, "state_dict": network.state_dict(), **extra}
    save_semret_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, contents)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, with clear errors for a missing, corrupt or foreign file."""
    return read_semret_file(
        path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "hash model checkpoint", ("config", "state_dict")
    )


def load_weights(network: HashNetwork, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, turning key or shape mismatches into one message that names them."""
    own = network.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:3])}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:3])}")
        if wrong_shape:
            k = wrong_shape[0]
            details.append(f"{k} is {tuple(state_dict[k].shape)} in the file, {tuple(own[k].shape)} in the config")
        raise SemretError(f"{source}: the weights do not match the checkpoint's config ({'; '.join(details)})")
    network.load_state_dict(state_dict)
