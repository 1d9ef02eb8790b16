"""ImageNet class probabilities from a backbone's own ImageNet head, on features already extracted.

The published IWAN code (after Palumbo & Allasia 2015) takes an image's words from an off-the-shelf
ImageNet classifier (ResNet-50 in Keras there): its top-10 classes and their probabilities. A
`semret.vision.backbones.Backbone` with ImageNet weights keeps that classifier as
``imagenet_head`` (EfficientNet-Lite0's ``_fc``, ResNet-50's ``fc``, AlexNet's last layer), which
applies to the pooled features the backbone gives, so softmax(head(features)) is the network's
own output, from the cached features, without running the network again. The class names are
torchvision's (offline), in the class order every ImageNet-1k head uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import numpy.typing as npt
import torch

from semret.errors import SemretError
from semret.vision.backbones import IMAGENET_CLASSES, Backbone

#: features (n, feature_dim) -> ImageNet probabilities (n, 1000), what `semret eval` is given.
ImagenetProbabilities = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


@cache
def _names() -> tuple[str, ...]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    names = tuple(str(name) for name in _IMAGENET_CATEGORIES)
    if len(names) != IMAGENET_CLASSES:
        raise SemretError(f"torchvision gives {len(names)} ImageNet class names, not {IMAGENET_CLASSES}")
    return names


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names, in class order (torchvision's list; works offline)."""
    return list(_names())


def imagenet_probabilities(
    backbone: Backbone, features: npt.ArrayLike, batch_size: int = 8192
) -> npt.NDArray[np.float64]:
    """The backbone's ImageNet probabilities (n, 1000) from its features (n, feature_dim): the
    head's logits (float32, as the network computes them) and their softmax in float64."""
    head = backbone.imagenet_head
    if head is None:
        raise SemretError(
            f"backbone {backbone.name} (weights {backbone.weights}) has no ImageNet classifier: use one with "
            "ImageNet weights (efficientnet-lite0, resnet18/34/50, alexnet)"
        )
    array = np.asarray(features, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != head.in_features:
        raise SemretError(
            f"features must have shape (images, {head.in_features}) for {backbone.name}'s ImageNet head, "
            f"got {array.shape}"
        )
    out = np.zeros((len(array), head.out_features), dtype=np.float64)
    head.eval()
    with torch.no_grad():
        for start in range(0, len(array), batch_size):
            logits = head(torch.from_numpy(np.ascontiguousarray(array[start : start + batch_size])))
            out[start : start + batch_size] = torch.softmax(logits.double(), dim=1).numpy()
    return out


def imagenet_predictor(backbone: Backbone) -> ImagenetProbabilities | None:
    """features -> ImageNet probabilities through this backbone's head, or None when it has none."""
    if backbone.imagenet_head is None:
        return None

    def predict(features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return imagenet_probabilities(backbone, features)

    return predict
