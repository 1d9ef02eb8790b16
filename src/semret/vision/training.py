"""Training a backbone from scratch, for data sets where no pretrained weights can be had (or fit),
and fine-tuning one (`finetune_backbone`, seed 003: a ResNet-34 fine-tuned with cross entropy, Adam
at 1e-4, 10 epochs).

`train_backbone` trains a named backbone from random initialisation (or from given weights), with a
linear classification head and cross-entropy (Adam), on labelled uint8 images. Only the backbone's
weights are kept: they are written to a ``.pth`` file and the returned `Backbone` loads them from
there, so that the feature cache keys its features by the file's SHA-256
(`semret.vision.backbones.weights_id`).

Meant for ``small-cnn`` (seconds to minutes on a CPU for Fashion-MNIST-sized data); any backbone works.
Training is seeded and reproducible: the same images, labels, parameters and seed give the same
weights on the same machine, and torch's global random state is left as it was (the initial weights
and any dropout draw inside `torch_seeded`, the order of the batches from a local generator).
There is no augmentation: every epoch sees the images as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    initial_weights: str = "none",
) -> Backbone:
    """Train backbone ``name`` + a linear head on ``images``, from random weights or (fine-tuning)
    from ``initial_weights`` (imagenet or a .pth file); write the backbone's state dict to ``out``
    (atomically) and return the backbone loaded from it. progress("training", epoch, epochs)."""
    backbone, _ = _train_with_head(
        name, images, labels, n_classes, epochs, batch_size, learning_rate, seed, image_size, progress, initial_weights
    )
    file = save_atomically(out, backbone.module.state_dict())
    return make_backbone(name, str(file), image_size)


@dataclass(frozen=True)
class FineTuning:
    """A fine-tuned backbone (loaded from the file written) and how well its classifier head did."""

    backbone: Backbone
    train_accuracy: float
    test_accuracy: float | None


def finetune_backbone(
    name: str,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    n_classes: int,
    *,
    out: str | Path,
    initial_weights: str = "imagenet",
    test_images: npt.NDArray[np.uint8] | None = None,
    test_labels: npt.NDArray[np.int64] | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-4,
    seed: int = 0,
    image_size: int | None = None,
    progress: Progress | None = None,
) -> FineTuning:
    """Seed 003's fine-tuning: cross entropy, Adam at 1e-4, 10 epochs, the whole network trained
    from ``initial_weights`` with a new linear head; the backbone's weights written to ``out``; the
    head's accuracy on the training images and (when given) on the test images."""
    backbone, model = _train_with_head(
        name, images, labels, n_classes, epochs, batch_size, learning_rate, seed, image_size, progress, initial_weights
    )
    file = save_atomically(out, backbone.module.state_dict())
    train_accuracy = _accuracy(model, backbone, images, labels, batch_size)
    test_accuracy = None
    if test_images is not None and test_labels is not None:
        test_accuracy = _accuracy(model, backbone, test_images, test_labels, batch_size)
    return FineTuning(make_backbone(name, str(file), image_size), train_accuracy, test_accuracy)


def _train_with_head(
    name: str,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    n_classes: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    image_size: int | None,
    progress: Progress | None,
    initial_weights: str,
) -> tuple[Backbone, nn.Module]:
    """The shared loop: backbone + linear head, cross entropy, Adam, seeded batches."""
    array, targets = _checked(images, labels, n_classes)
    epochs = check_count("epochs", epochs)
    batch_size = check_count("batch size", batch_size)
    learning_rate = check_positive("learning rate", learning_rate)
    seed = check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch_seeded(seed):
        backbone = make_backbone(name, initial_weights, image_size)
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
    model.eval()
    return backbone, model


def _accuracy(
    model: nn.Module, backbone: Backbone, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], batch: int
) -> float:
    """The share of ``images`` whose predicted class (network + head, eval mode) is their label."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            logits = model(backbone.preprocess(np.asarray(images[start : start + batch])))
            correct += int((logits.argmax(dim=1).numpy() == np.asarray(labels[start : start + batch])).sum())
    return correct / max(len(images), 1)


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
