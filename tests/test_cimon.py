"""CIMON (`semret.hashing.cimon`): the graph's pieces against hand computations, the losses
against direct loops, and training without labels on clustered features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from semret.core.codes import unpack_codes
from semret.errors import SemretError
from semret.hashing.cimon import (
    CimonHasher,
    confidence_weights,
    contrastive_loss,
    distance_mode,
    similarity_graph,
    similarity_loss,
)


def clustered(n_per: int, n_clusters: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(n_clusters, dim))) + 0.5 * rng.normal(size=(n_clusters, dim))
    labels = np.repeat(np.arange(n_clusters), n_per)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_the_mode_is_the_fullest_bins_left_edge() -> None:
    d = np.array([0.0, 0.203, 0.207, 0.209, 0.55, 0.56, 1.0, 1.3])
    assert distance_mode(d) == pytest.approx(0.2)
    with pytest.raises(SemretError, match="cosine distance 0 or >= 1"):
        distance_mode(np.array([0.0, 1.0, 1.5]))


def test_confidence_is_zero_at_the_threshold_and_grows_away_from_it() -> None:
    rng = np.random.default_rng(0)
    d = np.clip(rng.normal(0.4, 0.1, 5000), 0.001, 0.999)
    t = 0.25
    weights, mode, left_sigma, right_mean, right_sigma = confidence_weights(np.append(d, t), t)
    assert weights[-1] == 0 and np.all((weights >= 0) & (weights <= 1))
    # by hand, one distance on each side (with the parameters fitted on these very distances)
    above, below = 0.6, 0.1
    got, mode, left_sigma, right_mean, right_sigma = confidence_weights(np.append(d, [above, below]), t)
    w_above = (ndtr((above - right_mean) / right_sigma) - ndtr((t - right_mean) / right_sigma)) / (
        1 - ndtr((t - right_mean) / right_sigma)
    )
    w_below = (ndtr((t - mode) / left_sigma) - ndtr((below - mode) / left_sigma)) / ndtr((t - mode) / left_sigma)
    assert got[-2] == pytest.approx(min(max(w_above, 0), 1)) and got[-1] == pytest.approx(min(max(w_below, 0), 1))
    d = np.append(d, [above, below])
    left = d[d <= mode]
    assert left_sigma == pytest.approx(math.sqrt(np.mean((left - mode) ** 2)))


def test_the_graph_agrees_with_its_definition() -> None:
    features, _ = clustered(15, 4, 12, 0.3, seed=1)
    graph = similarity_graph(features, threshold=0.05, n_clusters=4, seed=0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distances = 1 - unit @ unit.T
    sure = np.abs(distances - 0.05) > 1e-9
    np.testing.assert_array_equal(graph.similar[sure], np.where(distances[sure] <= 0.05, 1, -1))
    assert np.array_equal(graph.similar, graph.similar.T) and np.allclose(graph.weights, graph.weights.T)
    assert np.all((graph.weights >= 0) & (graph.weights <= 1))
    same = graph.clusters[:, None] == graph.clusters[None, :]
    disagree = ((graph.similar == 1) & ~same) | ((graph.similar == -1) & same)
    assert np.all(graph.weights[disagree] == 0)  # the global refinement zeroes them
    again = similarity_graph(features, threshold=0.05, n_clusters=4, seed=0)
    np.testing.assert_array_equal(again.weights, graph.weights)  # deterministic
    assert 0 < graph.positive_rate < 1


def test_the_losses_against_direct_loops() -> None:
    rng = np.random.default_rng(3)
    v = torch.tanh(torch.tensor(rng.normal(size=(3, 5)), dtype=torch.float32))
    v2 = torch.tanh(torch.tensor(rng.normal(size=(3, 5)), dtype=torch.float32))
    s = torch.tensor([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], dtype=torch.float32)
    w = torch.tensor([[1.0, 0.5, 0.0], [0.5, 0.9, 0.2], [0.0, 0.2, 0.7]])
    expected = (
        sum(
            float(w[i, j]) * abs(float(s[i, j])) * (float(v[i] @ v[j]) / 5 - float(s[i, j])) ** 2
            for i in range(3)
            for j in range(3)
        )
        / 9
    )
    assert float(similarity_loss(v, s, w)) == pytest.approx(expected, rel=1e-5)
    z = torch.nn.functional.normalize(torch.cat([v, v2]), dim=1).numpy().astype(np.float64)
    total = 0.0
    for i in range(6):
        partner = (i + 3) % 6
        others = sum(math.exp(z[i] @ z[k] / 0.5) for k in range(6) if k != i)
        total += -math.log(math.exp(z[i] @ z[partner] / 0.5) / others)
    assert float(contrastive_loss(v, v2, 0.5)) == pytest.approx(total / 6, rel=1e-5)


def test_training_without_labels_groups_the_clusters() -> None:
    features, labels = clustered(40, 5, 16, 0.25, seed=7)
    rng = np.random.default_rng(8)
    views = features[:, None, :] + 0.05 * rng.normal(size=(len(features), 3, 16))
    hasher = CimonHasher(n_bits=16, threshold=0.1, n_clusters=5, epochs=15, batch_size=24, learning_rate=0.05, seed=0)
    hasher.fit(features, views)
    assert hasher.loss_history_[-1] < hasher.loss_history_[0]
    bits = unpack_codes(hasher.encode(features), 16).astype(np.int64)
    distances = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    np.fill_diagonal(distances, 10**6)
    nearest = distances.argmin(axis=1)
    assert np.mean(labels[nearest] == labels) > 0.8  # chance: 0.2
    short = {"n_bits": 16, "n_clusters": 5, "epochs": 2, "learning_rate": 0.05, "seed": 3}
    first, second = CimonHasher(**short).fit(features, views), CimonHasher(**short).fit(features, views)
    np.testing.assert_array_equal(first.encode(features), second.encode(features))  # seeded: the same codes


def test_bad_input() -> None:
    features, _ = clustered(5, 2, 4, 0.2, seed=0)
    hasher = CimonHasher(n_bits=8, epochs=1, n_clusters=2)
    with pytest.raises(SemretError, match=r"views must be \(n, V >= 2, d\) = \(10, V, 4\)"):
        hasher.fit(features, features[:, None, :])
    with pytest.raises(SemretError, match="zero"):
        similarity_graph(np.zeros((3, 4)))
    with pytest.raises(SemretError, match="n_clusters"):
        similarity_graph(features, n_clusters=50)
    with pytest.raises(SemretError, match="threshold"):
        CimonHasher(threshold=0)


def test_a_checkpoint_gives_back_the_same_codes_and_names_its_backbone(tmp_path: Path) -> None:
    features, _ = clustered(12, 3, 8, 0.2, seed=4)
    views = np.repeat(features[:, None, :], 2, axis=1) + 0.01
    hasher = CimonHasher(n_bits=12, n_clusters=3, epochs=2, seed=1).fit(features, views)
    source = {"backbone": "small-cnn", "weights": "none", "image_size": 16, "views": 2}
    hasher.save(tmp_path / "cimon.pt", source)
    loaded = CimonHasher.load(tmp_path / "cimon.pt")
    assert loaded.get_params() == hasher.get_params() and loaded.feature_source_ == source
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    encoded = loaded.encode_images(features)
    np.testing.assert_array_equal(encoded.codes, hasher.encode(features))
    np.testing.assert_allclose(np.linalg.norm(encoded.embeddings, axis=1), 1.0, rtol=1e-5)
    # the embedding is the tanh code, scaled: its signs are the code's bits
    assert np.array_equal(encoded.embeddings >= 0, unpack_codes(encoded.codes, 12).astype(bool))
    with pytest.raises(SemretError, match="the features have 5 dimensions, the CIMON model expects 8"):
        loaded.encode(features[:, :5])


def test_a_damaged_or_foreign_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(SemretError, match=r"broken\.pt: not a readable CIMON model"):
        CimonHasher.load(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something-else"}, foreign)
    with pytest.raises(SemretError, match=r"foreign\.pt: not a semret CIMON model"):
        CimonHasher.load(foreign)
    with pytest.raises(SemretError, match="no CIMON model at"):
        CimonHasher.load(tmp_path / "missing.pt")
