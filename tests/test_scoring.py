"""Scoring rankings: leaving the query out, labels of result ids, and the metrics as a whole."""

from __future__ import annotations

import numpy as np
import pytest

from semret.errors import SemretError
from semret.evaluation.scoring import Ground, score_rankings


def ground(queries_in_database: bool = True) -> Ground:
    # database: ids 10..15, classes 0 0 0 1 1 2; classes 0 and 1 are siblings (similarity 0.5)
    similarity = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return Ground(np.arange(10, 16), np.array([0, 0, 0, 1, 1, 2]), np.array([0, 2]), similarity, queries_in_database)


def test_labels_of_maps_ids_and_padding() -> None:
    assert ground().labels_of(np.array([[15, 10, -1]])).tolist() == [[2, 0, -1]]
    with pytest.raises(SemretError, match="result id 99 is not in the database"):
        ground().labels_of(np.array([[99]]))


def test_relevant_counts_leave_the_query_out_only_when_it_is_in_the_database() -> None:
    assert ground(True).relevant_counts().tolist() == [2, 0]
    assert ground(False).relevant_counts().tolist() == [3, 1]


def test_score_rankings_by_hand() -> None:
    # query 0 (class 0, image 10 itself left out): results 11 (class 0), 13 (class 1)
    # query 1 (class 2, image 15 left out): results 13 (class 1), -1 (nothing)
    scores = score_rankings(ground(), np.array([[11, 13], [13, -1]]), [1, 2])
    assert scores["P"] == {1: pytest.approx(0.5), 2: pytest.approx(0.25)}
    # AP@2: query 0 = (1 x 1) / min(2, R=2) = 0.5; query 1 has R = 0 -> 0
    assert scores["mAP"][2] == pytest.approx(0.25)
    # HP@2: query 0 gains 1 + 0.5, best is 1 + 1 -> 0.75; query 1 gains 0 of a best 0 -> 0
    assert scores["HP"][2] == pytest.approx(0.375)
    # AHP@2 of query 0: HP@1 = 1, HP@2 = 0.75 -> trapezoid (1 + 0.75) / 2 x 1/2
    assert scores["mAHP"][2] == pytest.approx((1 + 0.75) / 4 / 2)


def test_score_rankings_wants_max_k_columns() -> None:
    with pytest.raises(SemretError, match="rankings must be"):
        score_rankings(ground(), np.array([[11], [13]]), [1, 2])
