"""Training a backbone from scratch: it learns, it is reproducible, its weights file loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semret.errors import SemretError
from semret.vision.backbones import make_backbone, weights_id
from semret.vision.features import extract_features
from semret.vision.training import train_backbone


@pytest.fixture(scope="module")
def patterns() -> tuple[np.ndarray, np.ndarray]:
    """60 grey 16 x 16 images of 3 classes: horizontal stripes, vertical stripes, a bright square."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = rng.integers(0, 60, (60, 16, 16)).astype(np.uint8)
    images[labels == 0, ::4, :] = 220
    images[labels == 1, :, ::4] = 220
    images[labels == 2, 5:11, 5:11] = 220
    return images, labels


def nearest_mean_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    means = np.stack([features[labels == c].mean(axis=0) for c in range(3)])
    distances = ((features[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float(np.mean(distances.argmin(axis=1) == labels))


def separation(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance between class means over the mean squared distance to one's class mean."""
    means = np.stack([features[labels == c].mean(axis=0) for c in range(3)])
    within = np.mean([((features[labels == c] - means[c]) ** 2).sum(axis=1).mean() for c in range(3)])
    between = ((means[:, None] - means[None]) ** 2).sum(axis=2).sum() / 6
    return float(between / within)


def train(patterns: tuple[np.ndarray, np.ndarray], out: Path, seed: int = 0, **kwargs: object):  # type: ignore[no-untyped-def]
    images, labels = patterns
    settings = {"epochs": 3, "batch_size": 16, "learning_rate": 3e-3, "seed": seed, "image_size": 16, **kwargs}
    return train_backbone("small-cnn", images, labels, 3, out=out, **settings)  # type: ignore[arg-type]


def test_training_learns_and_writes_loadable_weights(patterns: tuple, tmp_path: Path) -> None:
    reports: list[tuple[str, int, int]] = []
    out = tmp_path / "weights" / "small-cnn.pth"
    backbone = train(patterns, out, progress=lambda *a: reports.append(a))
    assert reports == [("training", 1, 3), ("training", 2, 3), ("training", 3, 3)]
    assert out.is_file() and not (out.parent / "small-cnn.pth.partial").exists()
    assert (backbone.name, backbone.input_size, backbone.weights) == ("small-cnn", 16, str(out))
    assert weights_id(backbone).startswith("sha256:")
    images, labels = patterns
    trained = extract_features(backbone, images)
    assert nearest_mean_accuracy(trained, labels) > 0.9  # chance: 1/3
    # the initial weights: these patterns are easy, but training separates them far better
    initial = extract_features(make_backbone("small-cnn", "none", 16, seed=0), images)
    assert separation(trained, labels) > 10 * separation(initial, labels)


def test_training_is_seeded_and_reproducible(patterns: tuple, tmp_path: Path) -> None:
    first = train(patterns, tmp_path / "a.pth", epochs=1).module.state_dict()
    second = train(patterns, tmp_path / "b.pth", epochs=1).module.state_dict()
    other = train(patterns, tmp_path / "c.pth", seed=1, epochs=1).module.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["fc.1.weight"], other["fc.1.weight"])


def test_bad_training_inputs_are_clear_errors(patterns: tuple, tmp_path: Path) -> None:
    images, labels = patterns
    out = tmp_path / "w.pth"
    for arguments, message in (
        ((images, labels + 1, 3), r"labels must be class indices in 0..2"),
        ((images, labels[:10], 3), "60 training images and 10 labels"),
        ((images.astype(np.float32), labels, 3), "training images must be uint8"),
        ((images, labels, 1), "n_classes must be an integer of at least 2"),
    ):
        with pytest.raises(SemretError, match=message):
            train_backbone("small-cnn", *arguments, out=out, epochs=1)  # type: ignore[arg-type]
    with pytest.raises(SemretError, match="epochs must be an integer of at least 1"):
        train_backbone("small-cnn", images, labels, 3, out=out, epochs=0)
    with pytest.raises(SemretError, match="multiple of 8"):
        train_backbone("small-cnn", images, labels, 3, out=out, image_size=20)
    assert not out.exists()
