"""Training a backbone from scratch, for data sets where no pretrained weights can be had (or fit).

`train_backbone` trains a named backbone from random initialisation, with a linear classification
head and cross-entropy (Adam), on labelled uint8 images. Only the backbone's weights are kept: they
are written to a ``.pth`` file and the returned `Backbone` loads them from there, so that the feature
cache keys its features by the file's SHA-256 (`semret.vision.backbones.weights_id`).

Meant for ``small-cnn`` (seconds to minutes on a CPU for Fashion-MNIST-sized data); any backbone works.
Training is seeded and reproducible: the same images, labels, parameters and seed give the same
weights on the same machine, and torch's global random state is left as it was (the initial weights
and any dropout draw inside `torch_seeded`, the order of the batches from a local generator).
There is no augmentation: every epoch sees the images as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from semret.core.validation import check_count, check_labels, check_positive, check_seed
from semret.errors import SemretError
from semret.torch_files import save_atomically
from semret.vision.backbones import Backbone, make_backbone, torch_seeded
from semret.vision.features import Progress


def train_backbone(
    name: str,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    n_classes: int,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    image_size: int | None = None,
    out: str | Path,
    progress: Progress | None = None,
) -> Backbone:
    """Train backbone ``name`` (random init) + a linear head on ``images``; write the backbone's state
    dict to ``out`` (atomically) and return the backbone loaded from it. progress("training", epoch, epochs)."""
    array, targets = _checked(images, labels, n_classes)
    epochs = check_count("epochs", epochs)
    batch_size = check_count("batch size", batch_size)
    learning_rate = check_positive("learning rate", learning_rate)
    seed = check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch_seeded(seed):
        backbone = make_backbone(name, "none", image_size)
        model = nn.Sequential(backbone.module, nn.Linear(backbone.feature_dim, n_classes))
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        model.train()
        for epoch in range(epochs):
            for chosen in _batches(torch.randperm(len(array), generator=generator), batch_size):
                logits = model(backbone.preprocess(array[chosen.numpy()]))
                loss = functional.cross_entropy(logits, targets[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if progress:
                progress("training", epoch + 1, epochs)
    file = save_atomically(out, backbone.module.state_dict())
    return make_backbone(name, str(file), image_size)


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Mini-batches of ``order``; a last batch of one joins the one before (batch norm needs two)."""
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _checked(
    images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], n_classes: int
) -> tuple[npt.NDArray[np.uint8], torch.Tensor]:
    array = np.asarray(images)
    if array.dtype != np.uint8 or not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
        raise SemretError(f"training images must be uint8 (n, h, w) or (n, h, w, 3), got {array.dtype} {array.shape}")
    label_array = check_labels(labels, check_count("n_classes", n_classes, 2))
    if len(label_array) != len(array) or len(array) < 2:
        raise SemretError(f"{len(array)} training images and {len(label_array)} labels (need the same, at least 2)")
    return array, torch.from_numpy(label_array)
