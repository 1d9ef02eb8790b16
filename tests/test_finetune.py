"""ResNet-18/34 backbones and fine-tuning (seed 003): the ImageNet-weights code path through a local
file in torchvision's format, and `finetune_backbone` on small patterned images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import resnet18, resnet34

from semret.errors import SemretError
from semret.vision.backbones import make_backbone
from semret.vision.training import finetune_backbone


@pytest.mark.parametrize(("name", "build"), [("resnet18", resnet18), ("resnet34", resnet34)])
def test_a_torchvision_state_dict_loads_with_its_imagenet_head(name: str, build, tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = build(weights=None).eval()
    file = tmp_path / f"{name}.pth"
    torch.save(network.state_dict(), file)  # what torchvision's ImageNet weights file holds
    backbone = make_backbone(name, str(file), 32)
    assert backbone.feature_dim == 512 and backbone.imagenet_head is not None
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    inputs = backbone.preprocess(images)
    with torch.no_grad():
        features = backbone.module.eval()(inputs)
        pooled = torch.flatten(network.avgpool(network.layer4(network.layer3(network.layer2(network.layer1(
            network.maxpool(network.relu(network.bn1(network.conv1(inputs))))))))), 1)  # fmt: skip
        logits = network(inputs)
    torch.testing.assert_close(features, pooled)
    torch.testing.assert_close(backbone.imagenet_head(features), logits)


def test_random_weights_have_no_head_and_a_wrong_file_is_one_error(tmp_path: Path) -> None:
    assert make_backbone("resnet18", "none", 32, seed=0).imagenet_head is None
    wrong = tmp_path / "wrong.pth"
    torch.save(resnet34(weights=None).state_dict(), wrong)
    with pytest.raises(SemretError, match=r"wrong\.pth: not a ResNet-18 state dict \(unexpected layer"):
        make_backbone("resnet18", str(wrong), 32)


def patterned(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: a bright left half or a bright right half, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 16, 16, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, :, :8] += 150 if label == 0 else 0
        images[i, :, 8:] += 150 if label == 1 else 0
    return images, labels


def test_finetuning_learns_the_classes_and_writes_the_backbone(tmp_path: Path) -> None:
    start = tmp_path / "start.pth"
    torch.manual_seed(0)
    torch.save(resnet18(weights=None).state_dict(), start)  # a local file in place of ImageNet's
    train, train_labels = patterned(48, 2)
    test, test_labels = patterned(20, 3)
    out = tmp_path / "tuned.pth"
    tuned = finetune_backbone(
        "resnet18", train, train_labels, 2, out=out, initial_weights=str(start), test_images=test,
        test_labels=test_labels, epochs=3, batch_size=16, learning_rate=1e-3, image_size=16,
    )  # fmt: skip
    assert out.is_file() and tuned.backbone.weights == str(out) and tuned.backbone.feature_dim == 512
    assert tuned.train_accuracy > 0.9 and tuned.test_accuracy is not None and tuned.test_accuracy > 0.8
    again = finetune_backbone(
        "resnet18", train, train_labels, 2, out=tmp_path / "again.pth", initial_weights=str(start), epochs=3,
        batch_size=16, learning_rate=1e-3, image_size=16,
    )  # fmt: skip
    first, second = torch.load(out), torch.load(tmp_path / "again.pth")
    assert all(torch.equal(first[k], second[k]) for k in first)  # seeded: the same weights
    assert again.train_accuracy == tuned.train_accuracy and again.test_accuracy is None


def test_the_command_finetunes_on_a_folder_dataset_and_its_weights_serve_every_command(tmp_path: Path) -> None:
    from PIL import Image

    from helpers import ok, semret

    images, labels = patterned(30, 4)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = tmp_path / "data" / ("left" if label == 0 else "right")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "tuned.pth"
    done = ok("backbone", "finetune", "--dataset", "folder", "--data-dir", tmp_path / "data", "--backbone", "resnet18",
              "--weights", "none", "--image-size", "16", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3",
              "--out", out)  # fmt: skip
    assert "resnet18 fine-tuned from none weights on 24 images" in done.stdout  # 6 of 30 held out (20% a class)
    assert "test accuracy" in done.stdout and f"--backbone resnet18 --weights {out}" in done.stdout
    assert make_backbone("resnet18", str(out), 16).feature_dim == 512
    bad = semret("backbone", "finetune", "--dataset", "folder", "--data-dir", tmp_path / "data", "--backbone", "vgg",
                 "--out", out)  # fmt: skip
    assert bad.exit_code == 1 and "unknown backbone 'vgg'" in bad.stderr
