"""The semantic hash network: training, reproducibility, encoding, checkpoints, backbones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semret.core.codes import unpack_codes
from semret.errors import SemretError
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.hasher import SemanticHasher
from semret.vision.backbones import make_backbone
from semret.vision.hierarchy import ClassHierarchy

from helpers import FASHION_MNIST_LABELS

NAMES = FASHION_MNIST_LABELS


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable synthetic features of the 10 Fashion-MNIST classes, and their class embeddings."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    centres = rng.normal(size=(10, 32))
    features = (centres[labels] + 0.3 * rng.normal(size=(400, 32))).astype(np.float32)
    return features, labels, class_embeddings(ClassHierarchy.packaged("fashion-mnist"), NAMES)


def trained(data: tuple, **parameters: object) -> SemanticHasher:
    features, labels, targets = data
    settings = {"n_bits": 16, "epochs": 15, "learning_rate": 0.1, "batch_size": 64, **parameters}
    return SemanticHasher(**settings).fit(features, labels, targets, NAMES)  # type: ignore[arg-type]


def test_training_learns_the_class_embeddings(data: tuple) -> None:
    hasher = trained(data)
    features, labels, _ = data
    assert hasher.loss_history_[-1] < hasher.loss_history_[0] / 2
    assert np.mean(hasher.predict_classes(features) == labels) > 0.95
    encoded = hasher.encode(features)
    assert encoded.embeddings.shape == (400, 10) and encoded.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(encoded.embeddings, axis=1), 1.0, rtol=1e-5)
    assert encoded.codes.shape == (400, 2) and encoded.codes.dtype == np.uint8  # 16 bits packed


def test_codes_are_the_thresholded_hash_layer(data: tuple) -> None:
    hasher = trained(data, epochs=2)
    features = data[0][:20]
    with torch.no_grad():
        activations, _ = hasher.network_(torch.from_numpy(features))
    bits = unpack_codes(hasher.encode(features).codes, 16)
    np.testing.assert_array_equal(bits, (activations.numpy() > 0.5).astype(np.uint8))


def test_training_is_seeded_and_reproducible(data: tuple) -> None:
    first, second = trained(data, epochs=3, seed=5), trained(data, epochs=3, seed=5)
    other = trained(data, epochs=3, seed=6)
    assert first.loss_history_ == second.loss_history_
    np.testing.assert_array_equal(first.encode(data[0]).codes, second.encode(data[0]).codes)
    assert first.loss_history_ != other.loss_history_


def test_a_classification_term_can_be_added(data: tuple) -> None:
    hasher = trained(data, epochs=3, classification_weight=0.1)
    assert hasher.network_.classifier is not None and hasher.network_.classifier.out_features == 10


def test_checkpoints_round_trip(data: tuple, tmp_path: Path) -> None:
    hasher = trained(data, epochs=3, classification_weight=0.1)
    path = tmp_path / "model.pt"
    hasher.save(path)
    loaded = SemanticHasher.load(path, expect={"n_bits": 16})
    assert loaded.get_params() == hasher.get_params() and loaded.class_names_ == NAMES
    before, after = hasher.encode(data[0]), loaded.encode(data[0])
    np.testing.assert_array_equal(before.embeddings, after.embeddings)
    np.testing.assert_array_equal(before.codes, after.codes)


def test_bad_checkpoints_are_clear_errors(data: tuple, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    trained(data, epochs=1).save(path)
    with pytest.raises(SemretError, match="n_bits is 16 in the checkpoint, 48 expected"):
        SemanticHasher.load(path, expect={"n_bits": 48})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SemretError, match="not a readable hash model checkpoint"):
        SemanticHasher.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(SemretError, match="not a semret hash model checkpoint"):
        SemanticHasher.load(foreign)
    tampered = tmp_path / "tampered.pt"
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["hash_layer.weight"] = torch.zeros(8, 32)
    torch.save(payload, tampered)
    with pytest.raises(SemretError, match=r"hash_layer.weight is \(8, 32\) in the file, \(16, 32\) in the config"):
        SemanticHasher.load(tampered)
    with pytest.raises(SemretError, match="no hash model checkpoint"):
        SemanticHasher.load(tmp_path / "absent.pt")


def test_bad_inputs_are_clear_errors(data: tuple) -> None:
    features, labels, targets = data
    with pytest.raises(SemretError, match="not trained yet"):
        SemanticHasher().encode(features)
    with pytest.raises(SemretError, match="n_bits must be between"):
        SemanticHasher(n_bits=0)
    with pytest.raises(SemretError, match="labels must be class indices"):
        SemanticHasher(epochs=1).fit(features, labels + 10, targets, NAMES)
    with pytest.raises(SemretError, match="fine-tuning needs a backbone"):
        SemanticHasher(epochs=1, finetune=True).fit(features, labels, targets, NAMES)
    with pytest.raises(SemretError, match="the inputs have 8 features, the model expects 32"):
        trained(data, epochs=1).encode(features[:, :8])


def test_end_to_end_fine_tuning_of_a_small_cnn() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 64)
    images = rng.integers(0, 60, (64, 28, 28), dtype=np.uint8)
    images[labels == 1, 8:20, 8:20] = 250  # class 1 has a bright square
    targets = np.array([[1.0, 0.0], [0.0, 1.0]])
    hasher = SemanticHasher(n_bits=8, epochs=8, batch_size=16, learning_rate=0.05, backbone="small-cnn", finetune=True)
    hasher.fit(images, labels, targets, ["dark", "square"])
    assert hasher.loss_history_[-1] < hasher.loss_history_[0]
    assert np.mean(hasher.predict_classes(images) == labels) > 0.9
    assert hasher.encode(images).codes.shape == (64, 1)


def test_backbones_make_features_of_their_size() -> None:
    images = np.random.default_rng(2).integers(0, 255, (2, 28, 28, 3), dtype=np.uint8)
    for name, weights, dim in (
        ("small-cnn", None, 256),
        ("efficientnet-lite0", "imagenet", 1280),
        ("alexnet", "none", 4096),
    ):
        backbone = make_backbone(name, weights)
        backbone.module.eval()
        with torch.no_grad():
            assert tuple(backbone.module(backbone.preprocess(images)).shape) == (2, dim)
    with pytest.raises(SemretError, match="unknown backbone 'vgg'"):
        make_backbone("vgg")
    with pytest.raises(SemretError, match="no weights file"):
        make_backbone("alexnet", "/nonexistent/alexnet.pth")
