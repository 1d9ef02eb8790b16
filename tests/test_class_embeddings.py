"""Tests of the hierarchy-based class embeddings (`semret.hashing.class_embeddings`, Barz &
Denzler, WACV 2019): unit rows whose dot products are the class similarities, on hand-made
hierarchies (balanced, unbalanced, leaves at different depths), random trees and the packaged
hierarchies; the semi-definite fallback and the errors; and, where ``../shared/data`` is present,
a comparison with the embeddings Barz & Denzler published for CIFAR-100.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.errors import SemretError
from semret.hashing.class_embeddings import (
    MAX_ERROR,
    class_embeddings,
    embedding_error,
    embeddings_from_similarity,
)
from semret.vision.hierarchy import ClassHierarchy

from helpers import FASHION_MNIST_LABELS

PUBLISHED = Path(__file__).parents[2] / "shared" / "data" / "cifar100-hierarchy"

# Leaves at depths 3, 3, 2, 2 and 1 below a root of height 3 (see tests/test_hierarchy.py).
UNEVEN = {"root": {"animal": {"mammal": ["cat", "dog"], "bird": []}, "plant": ["tree"], "rock": []}}
BALANCED = {"r": {"a": ["a1", "a2"], "b": ["b1", "b2"]}}
# A long chain on one side, a single leaf on the other: heights differ a lot between branches.
UNBALANCED = {"r": {"x": {"y": {"z": ["deep1", "deep2", {"w": ["deeper"]}]}}, "shallow": []}}


def assert_embeds(hierarchy: ClassHierarchy, classes: list[int] | list[str]) -> np.ndarray:
    """Check the defining properties and return the embeddings."""
    embeddings = class_embeddings(hierarchy, classes)
    n = len(classes)
    assert embeddings.shape == (n, n)
    assert embeddings.dtype == np.float64
    similarity = hierarchy.similarity_matrix(classes)
    assert embedding_error(embeddings, similarity) < MAX_ERROR
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=0, atol=1e-12)
    return embeddings


def test_hand_computed_cholesky_rows() -> None:
    h = ClassHierarchy.from_mapping(UNEVEN)
    e = assert_embeds(h, ["cat", "dog", "bird", "tree", "rock"])
    # s(cat, dog) = 2/3, s(cat, bird) = s(dog, bird) = 1/3, everything else 0.
    expected = np.zeros((5, 5))
    expected[0, 0] = 1.0
    expected[1, :2] = [2 / 3, math.sqrt(5) / 3]
    expected[2, :3] = [1 / 3, 1 / (3 * math.sqrt(5)), math.sqrt(39 / 45)]
    expected[3, 3] = 1.0
    expected[4, 4] = 1.0
    np.testing.assert_allclose(e, expected, rtol=0, atol=1e-15)


def test_lower_triangular_like_the_incremental_construction() -> None:
    h = ClassHierarchy.from_mapping(UNEVEN)
    e = class_embeddings(h, ["tree", "cat", "rock", "bird", "dog"])
    np.testing.assert_array_equal(np.triu(e, 1), 0.0)
    assert (np.diag(e) > 0).all()


@pytest.mark.parametrize("nested", [BALANCED, UNBALANCED, UNEVEN], ids=["balanced", "unbalanced", "uneven-depths"])
def test_small_hierarchies(nested: dict[str, object]) -> None:
    h = ClassHierarchy.from_mapping(nested)
    leaves = list(h.leaves)
    assert_embeds(h, leaves)
    assert_embeds(h, leaves[::-1])
    assert_embeds(h, [h.name(leaf) for leaf in leaves[:2]])


def test_balanced_values() -> None:
    h = ClassHierarchy.from_mapping(BALANCED)
    e = assert_embeds(h, ["a1", "a2", "b1", "b2"])
    gram = e @ e.T
    assert gram[0, 1] == pytest.approx(0.5)
    assert gram[0, 2] == pytest.approx(0.0, abs=1e-15)


def test_unbalanced_values() -> None:
    h = ClassHierarchy.from_mapping(UNBALANCED)
    assert h.max_height == 5  # r -> x -> y -> z -> w -> deeper
    e = assert_embeds(h, ["deep1", "deep2", "deeper", "shallow"])
    gram = e @ e.T
    assert gram[0, 1] == pytest.approx(1 - 2 / 5)  # lcs z has height 2 (through w)
    assert gram[0, 2] == pytest.approx(1 - 2 / 5)
    assert gram[0, 3] == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), min_size=1, max_size=80))
def test_random_trees(draws: list[float]) -> None:
    # Node i + 1 hangs under a node drawn among 0..i: any rooted tree can come out.
    parents: dict[int, int | None] = {0: None}
    for i, u in enumerate(draws):
        parents[i + 1] = int(u * (i + 1))
    h = ClassHierarchy(parents)
    assert_embeds(h, list(h.leaves))


def test_packaged_fashion_mnist() -> None:
    h = ClassHierarchy.packaged("fashion-mnist")
    e = assert_embeds(h, FASHION_MNIST_LABELS)
    assert float(e[0] @ e[6]) == pytest.approx(2 / 3)  # T-shirt/top . Shirt


def test_packaged_cifar100() -> None:
    h = ClassHierarchy.packaged("cifar100")
    e = assert_embeds(h, list(range(100)))
    np.testing.assert_array_equal(np.triu(e, 1), 0.0)


def test_classes_must_be_distinct_leaves() -> None:
    h = ClassHierarchy.from_mapping(UNEVEN)
    with pytest.raises(SemretError, match=r"inner nodes: 'mammal', 'root'"):
        class_embeddings(h, ["cat", "mammal", "root"])
    with pytest.raises(SemretError, match=r"more than once: 'cat'"):
        class_embeddings(h, ["cat", "dog", "Cat"])
    with pytest.raises(SemretError, match=r"no node named 'horse'"):
        class_embeddings(h, ["cat", "horse"])


def test_semi_definite_fallback() -> None:
    # Rank 2: three unit vectors in a plane. Cholesky fails (or is inaccurate) on it.
    angles = np.array([0.0, 1.0, 2.5])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    similarity = vectors @ vectors.T
    e = embeddings_from_similarity(similarity)
    assert e.shape == (3, 3)
    assert embedding_error(e, similarity) < MAX_ERROR
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-12)
    # The same class twice: exactly singular.
    twice = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 1.0]])
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(twice)
    e = embeddings_from_similarity(twice)
    assert embedding_error(e, twice) < MAX_ERROR
    np.testing.assert_allclose(e[0], e[1], atol=1e-7)


def test_tiny_negative_eigenvalue_is_clipped() -> None:
    similarity = np.array([[1.0, 1.0], [1.0, 1.0]]) - 1e-9 * np.eye(2) / 2  # eigenvalues 2 - 5e-10, -5e-10
    e = embeddings_from_similarity(similarity)
    assert embedding_error(e, similarity) < MAX_ERROR


@pytest.mark.parametrize(
    ("similarity", "message"),
    [
        ([[1.0, 2.0], [2.0, 1.0]], r"not positive semi-definite \(smallest eigenvalue -1\)"),
        ([[1.0, 0.2], [0.3, 1.0]], r"not symmetric"),
        ([[1.0, 0.0, 0.0]], r"must be square"),
        ([[1.0, np.nan], [np.nan, 1.0]], r"not finite"),
    ],
)
def test_invalid_similarity_matrices(similarity: list[list[float]], message: str) -> None:
    with pytest.raises(SemretError, match=message):
        embeddings_from_similarity(similarity)


def test_embedding_error() -> None:
    assert embedding_error(np.eye(2), np.array([[1.0, 0.25], [0.25, 1.0]])) == 0.25
    assert embeddings_from_similarity(np.zeros((0, 0))).shape == (0, 0)
    with pytest.raises(SemretError, match="do not match"):
        embedding_error(np.eye(2), np.eye(3))


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="../shared/data/cifar100-hierarchy is not available")
def test_matches_the_published_cifar100_embeddings() -> None:
    with (PUBLISHED / "cifar100.unitsphere.pickle").open("rb") as handle:
        published = pickle.load(handle)
    reference = np.asarray(published["embedding"], dtype=np.float64)
    ind2label = published["ind2label"]
    classes = [int(ind2label[i]) for i in range(len(reference))]  # row i is the class ind2label[i]
    assert sorted(classes) == list(range(100))
    assert all(published["label2ind"][label] == i for i, label in enumerate(classes))

    h = ClassHierarchy.from_parent_child(PUBLISHED / "cifar.parent-child.txt", PUBLISHED / "class_names.txt")
    ours = class_embeddings(h, classes)
    similarity = h.similarity_matrix(classes)
    # The published embeddings satisfy the same similarity, and so do ours.
    assert embedding_error(reference, similarity) < MAX_ERROR
    assert np.abs(ours @ ours.T - reference @ reference.T).max() < MAX_ERROR
    # Same class order, same construction (Cholesky): the same vectors, up to rounding.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    # The packaged copy gives the same result.
    np.testing.assert_array_equal(class_embeddings(ClassHierarchy.packaged("cifar100"), classes), ours)
