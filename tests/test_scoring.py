"""Scoring rankings: leaving the query out, labels of result ids, and the metrics as a whole."""

from __future__ import annotations

import numpy as np
import pytest

from semret.errors import SemretError
from semret.evaluation.scoring import Ground, pad_rankings, score_rankings


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


def test_scores_of_a_query_without_results() -> None:
    # query 0 (class 0) found nothing; query 1 (class 2) found 13 (class 1): neither is right, so
    # balanced accuracy@1 is 0 (it was 0.5: the empty votes of a class-0 query said class 0)
    scores = score_rankings(ground(), np.array([[-1, -1], [13, -1]]), [1, 2])
    assert scores["balanced accuracy"] == {1: 0.0, 2: 0.0}
    assert scores["P"] == {1: 0.0, 2: 0.0}


def test_pad_rankings_fills_with_the_rest_of_the_database_in_id_order() -> None:
    database = np.arange(10, 16)
    ids = np.array([[11, -1, -1], [13, -1, -1], [12, 10, 11]])
    # row 0 leaves out its query 10: 12, 13; row 1 leaves out 15: 10, 11; row 2 is full
    padded = pad_rankings(ids, database, np.array([10, 15, 13]))
    assert padded.tolist() == [[11, 12, 13], [13, 10, 11], [12, 10, 11]]
    # nothing left out (the query counts, or is not in the database): the smallest ids not in the row
    assert pad_rankings(np.array([[10, -1, -1]]), database).tolist() == [[10, 11, 12]]
    # the database runs out: the rest stays -1
    assert pad_rankings(np.array([[11, -1, -1]]), np.array([10, 11]), np.array([10])).tolist() == [[11, -1, -1]]
    assert ids[0, 1] == -1  # the input is not changed


def test_missing_results_score_zero_by_default_or_padded() -> None:
    padded_ground = Ground(
        np.arange(10, 16),
        np.array([0, 0, 0, 1, 1, 2]),
        np.array([0, 2]),
        ground().similarity,
        True,
        query_ids=np.array([10, 15]),
    )
    ids = np.array([[11, -1, -1], [13, -1, -1]])
    zero = score_rankings(padded_ground, ids, [3])
    pad = score_rankings(padded_ground, ids, [3], missing="pad")
    assert zero == score_rankings(padded_ground, ids, [3], missing="zero")
    # zero: query 0 has 11 (class 0) and two empty places -> P@3 1/3; query 1 (class 2): 0 -> 1/6
    assert zero["P"][3] == pytest.approx(1 / 6)
    # pad: query 0 -> 11, 12, 13 = classes 0, 0, 1 -> 2/3; query 1 -> 13, 10, 11 -> 0 -> 1/3
    assert pad["P"][3] == pytest.approx(1 / 3)
    # HP@3 of query 0: zero gains 1 of a best 1 + 1 + 0.5 -> 0.4; padded gains 1 + 1 + 0.5 -> 1
    assert zero["HP"][3] == pytest.approx(0.4 / 2) and pad["HP"][3] == pytest.approx(1 / 2)
    # with the query (seed-002): padding keeps the query: query 1 -> 15, 10, 11
    with_query = np.array([[10, -1, -1], [15, -1, -1]])
    seed = score_rankings(padded_ground, ids, [3], convention="seed-002", ids_with_query=with_query, missing="pad")
    # query 0 -> 10, 11, 12 (all class 0) -> P@3 1; query 1 -> 15, 10, 11 -> 1/3
    assert seed["P"][3] == pytest.approx(2 / 3)


def test_padding_with_the_query_in_the_database_needs_its_id() -> None:
    with pytest.raises(SemretError, match=r"missing=.pad. with the queries in the database needs Ground\.query_ids"):
        score_rankings(ground(), np.array([[11, -1], [13, -1]]), [1, 2], missing="pad")
    outside = score_rankings(ground(False), np.array([[11, -1], [13, -1]]), [2], missing="pad")
    # query 0 -> 11, 10: both class 0 -> P@2 1; query 1 (class 2) -> 13, 10 -> 0
    assert outside["P"][2] == pytest.approx((1 + 0) / 2)
    with pytest.raises(SemretError, match="missing must be one of zero, pad, got 'skip'"):
        score_rankings(ground(), np.array([[11, -1], [13, -1]]), [1, 2], missing="skip")
