"""Backbones: ResNet-50, input sizes, weights files and their ids (offline: no download is attempted)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import ResNet50_Weights, resnet50

from semret.errors import SemretError
from semret.vision.backbones import SmallCnn, make_backbone, torch_seeded, weights_id

IMAGES = np.random.default_rng(0).integers(0, 255, (2, 28, 28), dtype=np.uint8)


def features(backbone_name: str, weights: str | None = None, image_size: int | None = None) -> torch.Tensor:
    backbone = make_backbone(backbone_name, weights, image_size)
    backbone.module.eval()
    with torch.no_grad():
        return backbone.module(backbone.preprocess(IMAGES))


def test_resnet50_gives_2048_features() -> None:
    backbone = make_backbone("resnet50", "none")
    assert (backbone.feature_dim, backbone.input_size, backbone.weights) == (2048, 224, "none")
    assert not any(key.startswith("fc.") for key in backbone.module.state_dict())
    assert tuple(features("resnet50", "none", 32).shape) == (2, 2048)


def test_resnet50_imagenet_weights_offline_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_: object, **__: object) -> None:
        raise OSError("no internet")

    monkeypatch.setattr(ResNet50_Weights, "get_state_dict", no_network)
    with pytest.raises(
        SemretError, match=r"ResNet-50's ImageNet weights .*no internet.*local file.*efficientnet-lite0"
    ):
        make_backbone("resnet50")  # ImageNet is the default


def test_resnet50_weights_files_round_trip(tmp_path: Path) -> None:
    with torch_seeded(0):
        source = resnet50(weights=None)
    source.eval()
    full = tmp_path / "resnet50.pth"
    torch.save(source.state_dict(), full)  # torchvision's state dict, fc included
    loaded = make_backbone("resnet50", str(full), 32)
    expected = source.state_dict()
    for name, value in loaded.module.state_dict().items():
        assert torch.equal(value, expected[name]), name
    headless = tmp_path / "headless.pth"
    torch.save(loaded.module.state_dict(), headless)  # the backbone's own state dict, as training writes
    again = make_backbone("resnet50", str(headless), 32)
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.module.state_dict().values(), loaded.module.state_dict().values(), strict=True)
    )
    torch.save({"weight": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(SemretError, match=r"not a ResNet-50 state dict \(missing .*; unexpected weight\)"):
        make_backbone("resnet50", str(tmp_path / "foreign.pth"))


def test_image_size_overrides_the_input_size() -> None:
    assert make_backbone("efficientnet-lite0", "none", 112).input_size == 112
    assert make_backbone("efficientnet-lite0", "none").input_size == 224
    assert tuple(features("efficientnet-lite0", "imagenet", 64).shape) == (2, 1280)
    for size in (16, 32, 64):
        backbone = make_backbone("small-cnn", None, size)
        assert backbone.input_size == size
        assert tuple(features("small-cnn", None, size).shape) == (2, 256)
    for name, size, message in (
        ("small-cnn", 20, "multiple of 8"),
        ("small-cnn", 8, "from 16 to 1024"),
        ("efficientnet-lite0", 0, "from 16"),
        ("alexnet", 32, "from 63"),
        ("resnet50", 1.5, "integer"),
    ):
        with pytest.raises(SemretError, match=message):
            make_backbone(name, "none", size)  # type: ignore[arg-type]


def test_small_cnn_keeps_its_state_dict_at_any_size() -> None:
    """Checkpoints of the 32 x 32 network still load: the pooling that adapts the size has no weights."""
    shapes = {key: tuple(value.shape) for key, value in SmallCnn().state_dict().items()}
    assert shapes["fc.1.weight"] == (256, 128 * 4 * 4)
    assert not any(key.startswith("pool") for key in shapes)
    with torch_seeded(1):
        network = SmallCnn().eval()
        inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # at 32 x 32 the adaptive pool is the identity
        expected = network.fc(network.features(inputs))
        assert torch.equal(network(inputs), expected)


def test_weights_ids(tmp_path: Path) -> None:
    assert weights_id(make_backbone("small-cnn")) == "none"
    assert weights_id(make_backbone("efficientnet-lite0", image_size=32)) == "imagenet"
    file = tmp_path / "small.pth"
    torch.save(SmallCnn().state_dict(), file)
    backbone = make_backbone("small-cnn", str(file))
    assert weights_id(backbone) == "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    file.unlink()
    with pytest.raises(SemretError, match="cannot read the weights file"):
        weights_id(backbone)
