"""The feature classifier (IWAN's word source): learning, probabilities, reproducibility, files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semret.errors import SemretError
from semret.vision.classifier import FeatureClassifier


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated Gaussian blobs in 8 dimensions, 30 points each, on a large offset and scale."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.normal(size=(4, 8)) * 5
    features = 100 + 10 * (centres[labels] + 0.3 * rng.normal(size=(120, 8)))
    return features.astype(np.float32), labels


def fitted(blobs: tuple, **parameters: object) -> FeatureClassifier:
    settings = {"epochs": 20, "batch_size": 32, "learning_rate": 0.05, **parameters}
    return FeatureClassifier(**settings).fit(*blobs)  # type: ignore[arg-type]


@pytest.mark.parametrize("hidden", [0, 16])
def test_separable_blobs_are_learnt(blobs: tuple, hidden: int) -> None:
    features, labels = blobs
    reports: list[tuple[str, int, int]] = []
    classifier = FeatureClassifier(hidden=hidden, epochs=20, batch_size=32, learning_rate=0.05)
    assert classifier.fit(features, labels, progress=lambda *a: reports.append(a)) is classifier
    assert reports[-1] == ("training", 20, 20) and len(reports) == 20
    assert classifier.n_classes_ == 4 and classifier.mean_.shape == classifier.scale_.shape == (8,)
    assert np.mean(classifier.predict(features) == labels) == 1.0
    probabilities = classifier.predict_proba(features)
    assert probabilities.shape == (120, 4) and probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert classifier.predict(features).dtype == np.int64
    assert classifier.loss_history_[-1] < classifier.loss_history_[0]


def test_n_classes_can_exceed_the_labels_seen(blobs: tuple) -> None:
    classifier = FeatureClassifier(epochs=2).fit(*blobs, n_classes=6)
    assert classifier.predict_proba(blobs[0][:3]).shape == (3, 6)


def test_training_is_seeded_and_reproducible(blobs: tuple) -> None:
    first, second, other = fitted(blobs, epochs=3), fitted(blobs, epochs=3), fitted(blobs, epochs=3, seed=1)
    np.testing.assert_array_equal(first.predict_proba(blobs[0]), second.predict_proba(blobs[0]))
    assert first.loss_history_ == second.loss_history_ != other.loss_history_


def test_files_round_trip(blobs: tuple, tmp_path: Path) -> None:
    classifier = fitted(blobs, hidden=8, epochs=3)
    path = tmp_path / "models" / "classifier.pt"
    classifier.save(path)
    loaded = FeatureClassifier.load(path)
    assert loaded.get_params() == classifier.get_params() and loaded.n_classes_ == 4
    np.testing.assert_array_equal(loaded.predict_proba(blobs[0]), classifier.predict_proba(blobs[0]))


def test_bad_files_are_clear_errors(blobs: tuple, tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    fitted(blobs, epochs=1).save(path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(SemretError, match=r"truncated\.pt: not a readable feature classifier file"):
        FeatureClassifier.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(SemretError, match=r"foreign\.pt: not a semret feature classifier file"):
        FeatureClassifier.load(foreign)
    payload = torch.load(path, weights_only=True)
    payload["n_features"] = 5
    torch.save(payload, tmp_path / "mismatched.pt")
    with pytest.raises(SemretError, match=r"mismatched\.pt: not a consistent feature classifier file"):
        FeatureClassifier.load(tmp_path / "mismatched.pt")
    with pytest.raises(SemretError, match="no feature classifier file"):
        FeatureClassifier.load(tmp_path / "absent.pt")


def test_bad_inputs_are_clear_errors(blobs: tuple) -> None:
    features, labels = blobs
    with pytest.raises(SemretError, match="not trained yet"):
        FeatureClassifier().predict(features)
    with pytest.raises(SemretError, match="not trained yet"):
        FeatureClassifier().save("never.pt")
    classifier = FeatureClassifier(epochs=1)
    for arguments, message in (
        ((features[:, 0], labels), r"must be a non-empty \(n, dims\) array"),
        ((np.where(labels[:, None] == 0, np.nan, features), labels), "NaN or infinite"),
        ((features, labels[:5]), "120 feature rows but 5 labels"),
        ((features, labels - 1), "labels must be class indices"),
        ((features, labels.astype(float)), "1-d array of class indices"),
        ((features, np.zeros(120, dtype=np.int64)), "only one class"),
        ((features, labels, 3), r"labels must be class indices in 0..2"),
    ):
        with pytest.raises(SemretError, match=message):
            classifier.fit(*arguments)  # type: ignore[arg-type]
    with pytest.raises(SemretError, match="the features have 3 dimensions, the classifier expects 8"):
        fitted(blobs, epochs=1).predict(features[:, :3])
    for parameters, message in (
        ({"hidden": -1}, "hidden must be"),
        ({"epochs": 0}, "epochs must be"),
        ({"learning_rate": 0}, "learning rate must be positive"),
        ({"weight_decay": -1}, "weight decay must not be negative"),
    ):
        with pytest.raises(SemretError, match=message):
            FeatureClassifier(**parameters)  # type: ignore[arg-type]
