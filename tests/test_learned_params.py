"""The learned models' scikit-learn habits: parameters from ``__init__`` (`get_params`), stored in
their files from there, one not-fitted check, and seeding that leaves torch's global state alone."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from semret.errors import SemretError
from semret.hashing.hasher import SemanticHasher
from semret.vision.backbones import make_backbone, torch_seeded
from semret.vision.classifier import FeatureClassifier
from semret.vision.training import train_backbone


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three separable classes in 6 dimensions, and orthogonal class embeddings."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 20)
    features = (rng.normal(size=(3, 6)) * 4)[labels] + rng.normal(size=(60, 6))
    return features.astype(np.float32), labels, np.eye(3)


NAMES = ["a", "b", "c"]


def defaults(cls: type) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


@pytest.mark.parametrize("cls", [SemanticHasher, FeatureClassifier])
def test_parameters_are_the_init_arguments(cls: type) -> None:
    model = cls()
    assert model.get_params() == defaults(cls)
    assert list(model.get_params()) == cls.param_names()
    assert not hasattr(model, "config")
    assert repr(model).startswith(f"{cls.__name__}(") and "seed=0" in repr(model)
    assert cls(**model.get_params()).get_params() == model.get_params()


def test_hasher_parameters_are_validated_and_canonical() -> None:
    hasher = SemanticHasher(n_bits=np.int64(16), learning_rate=1, momentum=0)
    assert hasher.n_bits == 16 and type(hasher.n_bits) is int
    assert hasher.learning_rate == 1.0 and type(hasher.learning_rate) is float
    for parameters, message in (
        ({"n_bits": 1025}, "n_bits must be between 1 and 1024"),
        ({"n_bits": 8.0}, "n_bits must be between"),
        ({"epochs": 0}, "epochs must be an integer of at least 1"),
        ({"batch_size": True}, "batch size must be an integer of at least 1"),
        ({"learning_rate": float("nan")}, "learning rate must be positive"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"weight_decay": -0.1}, "weight decay must not be negative"),
        ({"classification_weight": -1}, "classification weight must not be negative"),
        ({"backbone": "vgg"}, "unknown backbone 'vgg'"),
        ({"seed": -1}, "seed must be an integer between 0 and"),
    ):
        with pytest.raises(SemretError, match=message):
            SemanticHasher(**parameters)  # type: ignore[arg-type]
    for parameters, message in (
        ({"batch_size": 0}, "batch size must be an integer of at least 1"),
        ({"seed": 1.5}, "seed must be an integer"),
    ):
        with pytest.raises(SemretError, match=message):
            FeatureClassifier(**parameters)  # type: ignore[arg-type]


def test_files_store_get_params(blobs: tuple, tmp_path: Path) -> None:
    features, labels, targets = blobs
    hasher = SemanticHasher(n_bits=8, epochs=2, learning_rate=0.1, seed=4).fit(features, labels, targets, NAMES)
    hasher.save(tmp_path / "model.pt")
    assert torch.load(tmp_path / "model.pt", weights_only=True)["config"] == hasher.get_params()
    classifier = FeatureClassifier(epochs=2, seed=4).fit(features, labels)
    classifier.save(tmp_path / "classifier.pt")
    assert torch.load(tmp_path / "classifier.pt", weights_only=True)["config"] == classifier.get_params()


def test_hasher_checkpoints_rebuild_from_their_params(blobs: tuple, tmp_path: Path) -> None:
    features, labels, targets = blobs
    path = tmp_path / "model.pt"
    SemanticHasher(n_bits=8, epochs=2, learning_rate=0.1).fit(features, labels, targets, NAMES).save(path)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["momentum"]  # a checkpoint from before a parameter existed: its default
    torch.save(payload, tmp_path / "older.pt")
    assert SemanticHasher.load(tmp_path / "older.pt").momentum == 0.9
    payload["config"]["dropout"] = 0.5
    torch.save(payload, tmp_path / "newer.pt")
    with pytest.raises(SemretError, match=r"unknown config fields \['dropout'\]"):
        SemanticHasher.load(tmp_path / "newer.pt")
    payload["config"] = {"n_bits": 0}
    torch.save(payload, tmp_path / "invalid.pt")
    with pytest.raises(SemretError, match=r"invalid\.pt: n_bits must be between 1 and 1024"):
        SemanticHasher.load(tmp_path / "invalid.pt")
    with pytest.raises(SemretError, match="epochs is 2 in the checkpoint, 3 expected"):
        SemanticHasher.load(path, expect={"epochs": 3})


def test_the_not_fitted_check(blobs: tuple, tmp_path: Path) -> None:
    features, labels, targets = blobs
    for model in (SemanticHasher(), FeatureClassifier()):
        with pytest.raises(SemretError, match="not trained yet"):
            model.save(tmp_path / "never.pt")
    hasher = SemanticHasher(n_bits=8, epochs=1)
    with pytest.raises(SemretError, match="labels must be class indices"):
        hasher.fit(features, labels + 5, targets, NAMES)
    assert not hasattr(hasher, "loss_history_")  # a failed fit leaves no learned state
    with pytest.raises(SemretError, match="not trained yet"):
        hasher.encode(features)


def test_fitting_leaves_the_global_random_state_alone(blobs: tuple, tmp_path: Path) -> None:
    features, labels, targets = blobs
    before = torch.get_rng_state()
    SemanticHasher(n_bits=8, epochs=1).fit(features, labels, targets, NAMES)
    FeatureClassifier(epochs=1, hidden=4).fit(features, labels)
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8)
    train_backbone("small-cnn", images, np.arange(8) % 2, 2, epochs=1, image_size=16, out=tmp_path / "w.pth")
    make_backbone("small-cnn", "none", 16, seed=3)
    with torch_seeded(5):
        torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)


def test_seeded_results_do_not_depend_on_the_global_state(blobs: tuple) -> None:
    features, labels, targets = blobs
    first = SemanticHasher(n_bits=8, epochs=2, seed=7).fit(features, labels, targets, NAMES)
    torch.rand(100)  # the global generator moves on
    second = SemanticHasher(n_bits=8, epochs=2, seed=7).fit(features, labels, targets, NAMES)
    assert first.loss_history_ == second.loss_history_
    one = FeatureClassifier(epochs=2, seed=7).fit(features, labels)
    torch.rand(100)
    two = FeatureClassifier(epochs=2, seed=7).fit(features, labels)
    np.testing.assert_array_equal(one.predict_proba(features), two.predict_proba(features))
    a, b = (make_backbone("small-cnn", "none", 16, seed=2).module.state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch_seeded(2):
        drawn = torch.rand(4)
    with torch_seeded(2):
        assert torch.equal(torch.rand(4), drawn)


def test_a_frozen_random_backbone_is_the_same_after_load(tmp_path: Path) -> None:
    """Weights 'none' are not in the checkpoint of a frozen backbone: they are drawn from the seed again."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(2), 12)
    images = rng.integers(0, 255, (24, 16, 16), dtype=np.uint8)
    hasher = SemanticHasher(n_bits=8, epochs=2, batch_size=8, backbone="small-cnn", backbone_weights="none", seed=9)
    hasher.fit(images, labels, np.eye(2), ["x", "y"])
    hasher.save(tmp_path / "frozen.pt")
    loaded = SemanticHasher.load(tmp_path / "frozen.pt")
    np.testing.assert_array_equal(loaded.encode(images).embeddings, hasher.encode(images).embeddings)


def test_loading_leaves_the_global_random_state_alone(blobs: tuple, tmp_path: Path) -> None:
    features, labels, targets = blobs
    SemanticHasher(n_bits=8, epochs=1).fit(features, labels, targets, NAMES).save(tmp_path / "model.pt")
    FeatureClassifier(epochs=1).fit(features, labels).save(tmp_path / "classifier.pt")
    torch.save(make_backbone("small-cnn", "none", 16, seed=1).module.state_dict(), tmp_path / "w.pth")
    before = torch.get_rng_state()
    SemanticHasher.load(tmp_path / "model.pt")
    FeatureClassifier.load(tmp_path / "classifier.pt")
    make_backbone("small-cnn", str(tmp_path / "w.pth"), 16)
    make_backbone("efficientnet-lite0", "imagenet", 32)
    assert torch.equal(torch.get_rng_state(), before)
