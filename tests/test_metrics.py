"""Retrieval metrics: hand-computed cases, scikit-learn's AP, and a plain-loop reference of HP/AHP."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from semret.errors import SemretError
from semret.evaluation.metrics import (
    average_hierarchical_precision_at_k,
    average_precision_at_k,
    balanced_accuracy_at_k,
    hierarchical_precision_at_k,
    hierarchical_precision_curves,
    precision_at_k,
)

# classes 0 and 1 are siblings (similarity 0.5), class 2 is unrelated
SIMILARITY = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
DATABASE = np.array([0, 0, 1, 1, 2])  # images 0..4


def test_a_hand_computed_query() -> None:
    # query: image 0 (class 0); its results, itself left out: images 2, 1, 4, 3 = classes 1, 0, 2, 1
    query, results = np.array([0]), np.array([[1, 0, 2, 1]])
    precision = precision_at_k(query, results, [1, 2, 4])
    assert [precision[k][0] for k in (1, 2, 4)] == [0.0, 0.5, 0.25]
    # one other image of class 0 (R = 1), found at rank 2 with P@2 = 0.5
    ap = average_precision_at_k(query, results, [1], [1, 4])
    assert (ap[1][0], ap[4][0]) == (0.0, 0.5)
    # gained similarities 0.5, 1, 0, 0.5 -> 0.5, 1.5, 1.5, 2.0; the best ranking of images 1..4
    # (classes 0, 1, 1, 2) gives 1, 1.5, 2, 2 -> HP@1..4 = 0.5, 1, 0.75, 1
    curves = hierarchical_precision_curves(query, results, SIMILARITY, DATABASE, 4)
    np.testing.assert_allclose(curves[0], [0.5, 1.0, 0.75, 1.0])
    assert hierarchical_precision_at_k(curves, [3])[3][0] == pytest.approx(0.75)
    # trapezoid with dx = 1/4: 0.25 x (0.75 + 0.875 + 0.875) = 0.625
    assert average_hierarchical_precision_at_k(curves, [4])[4][0] == pytest.approx(0.625)


def test_missing_results_gain_nothing() -> None:
    curves = hierarchical_precision_curves(np.array([2]), np.array([[2, -1]]), SIMILARITY, DATABASE, 2)
    # the query is the only class-2 image and every other class is at similarity 0 to class 2:
    # the best possible sum is 0, and HP is then 0 (not a division by zero); -1 pads gain nothing
    assert curves[0, 0] == 0.0 and np.isfinite(curves).all()


def test_average_precision_over_the_full_ranking_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    database = rng.integers(0, 4, 60)
    for query in range(15):
        others = np.delete(np.arange(60), query)
        ranking = rng.permutation(others)
        labels = database[ranking][None, :]
        relevant = int((database[others] == database[query]).sum())
        ours = average_precision_at_k([database[query]], labels, [relevant], [59])[59][0]
        theirs = average_precision_score(labels[0] == database[query], -np.arange(59))
        assert ours == pytest.approx(theirs, abs=1e-12)


def reference_hp(query_class: int, result_classes: list[int], database: list[int], sims: np.ndarray, k: int) -> float:
    """HP@k by the definition, with plain loops: gained / best possible over the database."""
    gained = sum(sims[query_class, c] for c in result_classes[:k] if c >= 0)
    pool = list(database)
    pool.remove(query_class)  # the query itself
    best = sorted((sims[query_class, c] for c in pool), reverse=True)
    return gained / sum(best[:k])


def test_hierarchical_precision_equals_a_plain_loop_reference() -> None:
    rng = np.random.default_rng(1)
    sims = rng.uniform(0, 1, (5, 5))
    sims = (sims + sims.T) / 2
    np.fill_diagonal(sims, 1.0)
    database = rng.integers(0, 5, 80)
    queries = rng.choice(80, size=12, replace=False)
    results = np.array([database[rng.permutation(np.delete(np.arange(80), q))[:20]] for q in queries])
    curves = hierarchical_precision_curves(database[queries], results, sims, database, 20)
    for row, query in enumerate(queries):
        for k in (1, 5, 20):
            expected = reference_hp(int(database[query]), results[row].tolist(), database.tolist(), sims, k)
            assert curves[row, k - 1] == pytest.approx(expected, rel=1e-12)
        area = np.trapezoid(
            [
                reference_hp(int(database[query]), results[row].tolist(), database.tolist(), sims, i)
                for i in range(1, 11)
            ],
            dx=0.1,
        )
        assert average_hierarchical_precision_at_k(curves, [10])[10][row] == pytest.approx(area, rel=1e-12)


def test_balanced_accuracy_of_the_majority_label() -> None:
    queries = np.array([0, 0, 1, 2])
    results = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0], [0, 2, 2]])
    # k = 1: predictions 0, 1, 1, 0 -> class 0: 1/2, class 1: 1, class 2: 0 -> 0.5
    # k = 2: ties go to the better-ranked class: 0, 1, 1, 0 -> 0.5; k = 3: 0, 1, 1, 2 -> 5/6
    accuracy = balanced_accuracy_at_k(queries, results, [1, 2, 3], n_classes=3)
    assert accuracy[1] == pytest.approx(0.5) and accuracy[2] == pytest.approx(0.5)
    assert accuracy[3] == pytest.approx(5 / 6)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(SemretError, match=r"every k must be in 1..2"):
        precision_at_k([0], [[0, 1]], [3])
    with pytest.raises(SemretError, match=r"result labels must be \(queries, k\)"):
        precision_at_k([0, 1], [[0, 1]], [1])


def test_a_query_without_results_votes_for_no_class() -> None:
    # a class-0 query with no results at all: np.argmax over all-zero votes would say class 0 and
    # count it right; it has no label and is wrong. Class 1's query is right.
    queries = np.array([0, 1])
    results = np.array([[-1, -1], [1, -1]])
    accuracy = balanced_accuracy_at_k(queries, results, [1, 2], n_classes=2)
    assert accuracy == {1: 0.5, 2: 0.5}
    # the same when the query's results start after k
    assert balanced_accuracy_at_k([0], [[-1, 0]], [1, 2], n_classes=1) == {1: 0.0, 2: 1.0}


def test_a_tie_goes_to_the_class_whose_first_result_ranks_best() -> None:
    # top 4: classes 0, 1, 1, 0 -> two each; class 0's first result is at rank 1, so class 0 wins
    # (rank sums would tie, 1 + 4 = 2 + 3, and fall back to the lower class index by chance)
    assert balanced_accuracy_at_k([1], [[0, 1, 1, 0]], [4], n_classes=2) == {4: 0.0}
    assert balanced_accuracy_at_k([0], [[0, 1, 1, 0]], [4], n_classes=2) == {4: 1.0}
    # top 4: classes 1, 0, 0, 1 -> class 1 first
    assert balanced_accuracy_at_k([1], [[1, 0, 0, 1]], [4], n_classes=2) == {4: 1.0}
