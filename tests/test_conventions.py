"""Metric conventions: the registry, hand-computed cases, a plain-loop reference of every definition
on random rankings, and the values of a perfect ranking (docs/metrics.md quotes them)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.errors import SemretError
from semret.evaluation.conventions import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    degenerate,
    get_convention,
    trapezoid_ahp_ceiling,
)
from semret.evaluation.scoring import METRICS, Ground, score_rankings

# database: ids 10..15, classes 0 0 0 1 1 2; classes 0 and 1 are siblings (parent 7, similarity 0.5),
# class 2 is alone under parent 8; the queries are images 10 (class 0) and 15 (class 2)
SIMILARITY = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])


def ground(similarity: np.ndarray = SIMILARITY) -> Ground:
    return Ground(
        np.arange(10, 16),
        np.array([0, 0, 0, 1, 1, 2]),
        np.array([0, 2]),
        similarity,
        True,
        parents=np.array([7, 7, 8]),
        query_ids=np.array([10, 15]),
    )


# ---------------------------------------------------------------- the registry


def test_the_registry_names_and_describes_every_convention() -> None:
    assert DEFAULT_CONVENTION == "semret"
    assert set(CONVENTIONS) == {"semret", "seed-002", "seed-002-iwan", "hashnet", "deephash-pytorch"}
    assert tuple(CONVENTIONS["semret"].metrics) == METRICS
    assert list(CONVENTIONS["seed-002"].metrics) == ["mAP", "mAHP", "P", "HP", "balanced accuracy"]
    assert list(CONVENTIONS["seed-002-iwan"].metrics) == ["mAP", "mAHP"]
    assert list(CONVENTIONS["hashnet"].metrics) == ["mAP", "P"]
    assert [name for name, c in CONVENTIONS.items() if c.query_counts] == ["seed-002"]
    for name, convention in CONVENTIONS.items():
        assert convention.name == name and convention.source
        assert all(definition and "\n" not in definition for definition in convention.metrics.values())


def test_every_convention_scores_and_gives_its_metrics() -> None:
    ids = np.array([[11, 13], [13, -1]])
    with_query = np.array([[10, 11], [15, 13]])
    for name, convention in CONVENTIONS.items():
        scores = score_rankings(ground(), ids, [1, 2], convention=name, ids_with_query=with_query)
        assert list(scores) == list(convention.metrics)
        assert all(set(per_k) == {1, 2} for per_k in scores.values())


def test_unknown_conventions_and_missing_inputs_are_one_line_errors() -> None:
    with pytest.raises(SemretError, match=r"unknown metric convention 'bogus'; known: semret, seed-002, ") as info:
        get_convention("bogus")
    assert "\n" not in str(info.value)
    ids = np.array([[11, 13], [13, -1]])
    with pytest.raises(SemretError, match="unknown metric convention"):
        score_rankings(ground(), ids, [1, 2], convention="bogus")
    with pytest.raises(SemretError, match="counts the query: give ids_with_query"):
        score_rankings(ground(), ids, [1, 2], convention="seed-002")
    with pytest.raises(SemretError, match=r"rankings with the query must be \(queries, max k\)"):
        score_rankings(ground(), ids, [1, 2], convention="seed-002", ids_with_query=ids[:, :1])
    flat = Ground(np.arange(10, 16), np.array([0, 0, 0, 1, 1, 2]), np.array([0, 2]), SIMILARITY, True)
    with pytest.raises(SemretError, match=r"needs Ground\.parents"):
        score_rankings(flat, ids, [1, 2], convention="seed-002-iwan")
    with pytest.raises(SemretError, match="parents must give one parent per class"):
        Ground(np.arange(3), np.zeros(3, dtype=np.int64), np.zeros(1, dtype=np.int64), SIMILARITY, True, np.zeros(2))


def test_seed_002_uses_ids_when_the_queries_are_not_in_the_database() -> None:
    outside = Ground(np.arange(10, 16), np.array([0, 0, 0, 1, 1, 2]), np.array([0, 2]), SIMILARITY, False)
    scores = score_rankings(outside, np.array([[10, 13], [15, -1]]), [1, 2], convention="seed-002")
    assert scores["mAP"][1] == 1.0 and scores["P"][2] == pytest.approx(0.5)


def test_degenerate_notes_and_the_trapezoid_ceiling() -> None:
    assert degenerate("semret", "mAHP", 1) == "0 by definition (trapezoid over one point)"
    assert degenerate("semret", "mAHP", 2) is None and degenerate("semret", "HP", 1) is None
    assert degenerate("seed-002", "mAP", 1) == "1 for any method that ranks the query first (the query counts)"
    assert degenerate("seed-002", "mAP", 1, queries_in_database=False) is None
    assert degenerate("hashnet", "mAP", 1) is None
    with pytest.raises(SemretError, match="convention 'hashnet' gives no 'mAHP'; it gives mAP, P"):
        degenerate("hashnet", "mAHP", 5)
    # a perfect ranking has HP@i = 1 at every i: the trapezoid over k points, dx = 1/k, is (k - 1)/k
    for k in (1, 2, 10, 250):
        perfect = score_rankings(*_perfect(k_max=k, per_class=k + 1), [k])
        assert perfect["HP"][k] == 1.0
        assert perfect["mAHP"][k] == pytest.approx(trapezoid_ahp_ceiling(k)) == pytest.approx((k - 1) / k)


# ---------------------------------------------------------------- hand-computed cases


def test_seed_002_by_hand() -> None:
    # with the query: query 10 (class 0) -> 10, 11, 13 = classes 0, 0, 1
    #                 query 15 (class 2) -> 15, 13, -  = classes 2, 1, missing
    with_query = np.array([[10, 11, 13], [15, 13, -1]])
    scores = score_rankings(ground(), np.full((2, 3), -1), [1, 2, 3], convention="seed-002", ids_with_query=with_query)
    # P: query 10: 1, 1, 2/3; query 15: 1, 1/2, 1/3 -> 1, 3/4, 1/2
    assert scores["P"] == pytest.approx({1: 1.0, 2: 0.75, 3: 0.5})
    # AP@k = sum rel(i) P@i / k: query 10: 1/1, (1 + 1)/2, (1 + 1)/3; query 15: 1/1, 1/2, 1/3
    assert scores["mAP"] == pytest.approx({1: 1.0, 2: 0.75, 3: 0.5})
    # HP, best ranking with the query: class 0 -> sims 1, 1, 1 (three class-0 images): cumulative 1, 2, 3;
    # gained 1, 1, 0.5 -> 1, 2, 2.5 -> HP 1, 1, 5/6. Class 2 -> best 1, 1, 1; gained 1, 0, 0 -> HP 1, 1, 1
    assert scores["HP"] == pytest.approx({1: 1.0, 2: 1.0, 3: (5 / 6 + 1) / 2})
    # AHP@k = mean of HP@1..HP@k: query 10: 1, 1, (1 + 1 + 5/6)/3 = 17/18; query 15: 1, 1, 1
    assert scores["mAHP"] == pytest.approx({1: 1.0, 2: 1.0, 3: (17 / 18 + 1) / 2})
    # balanced accuracy: the best ranking's similarities, rank by rank: class 0 -> 1, 1, 1; class 2 -> 1, 0, 0.
    # query 10: 1 = 1, 1 = 1, 0.5 != 1 -> matched classes {0}, one miss -> k 1, 2: 1; k 3: 1/(1 + 1)
    # query 15: 1 = 1, sim(2, 1) = 0 = 0, missing -> matched {2, 1}, one miss -> k 1, 2: 1; k 3: 2/3
    assert scores["balanced accuracy"] == pytest.approx({1: 1.0, 2: 1.0, 3: (1 / 2 + 2 / 3) / 2})


def test_seed_002_iwan_by_hand() -> None:
    similarity = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # query 10 (class 0) -> 13, 11, - = classes 1 (same parent: 0.5), 0 (1), missing (0)
    # query 15 (class 2) -> 11, 13, 14 = classes 0, 1, 1 (parent 7, not 8: 0 each)
    ids = np.array([[13, 11, -1], [11, 13, 14]])
    scores = score_rankings(ground(similarity), ids, [1, 2, 3], convention="seed-002-iwan")
    # AP: query 10: 0.5/1, 1.5/2, 1.5/3; query 15: 0 -> 0.25, 0.375, 0.25
    assert scores["mAP"] == pytest.approx({1: 0.25, 2: 0.375, 3: 0.25})
    # AHP = mean similarity: query 10: 0.8/1, 1.8/2, 1.8/3; query 15: 0 -> 0.4, 0.45, 0.3
    assert scores["mAHP"] == pytest.approx({1: 0.4, 2: 0.45, 3: 0.3})


def test_a_class_without_a_parent_has_no_siblings() -> None:
    orphans = Ground(
        np.arange(4), np.array([0, 1, 1, 2]), np.array([0]), np.eye(3), False, parents=np.array([-1, -1, 5])
    )
    scores = score_rankings(orphans, np.array([[1, 2, 3]]), [3], convention="seed-002-iwan")
    assert scores["mAP"][3] == 0.0


def test_hashnet_and_deephash_by_hand() -> None:
    # query 10 (class 0) -> 13, 11, 12 = classes 1, 0, 0; query 15 (class 2) -> 13, -, - = class 1
    ids = np.array([[13, 11, 12], [13, -1, -1]])
    hashnet = score_rankings(ground(), ids, [1, 2, 3], convention="hashnet")
    deephash = score_rankings(ground(), ids, [1, 2, 3], convention="deephash-pytorch")
    # k = 1: no query has a hit: HashNet's mean over no query is 0 here, DeepHash's 0 / 2
    # k = 2: query 10: hit at 2 (P@2 = 1/2) over 1 hit = 1/2; query 15 has none (skipped / 0)
    # k = 3: query 10: (1/2 + 2/3) / 2 hits = 7/12
    assert hashnet["mAP"] == pytest.approx({1: 0.0, 2: 0.5, 3: 7 / 12})
    assert deephash["mAP"] == pytest.approx({1: 0.0, 2: 0.25, 3: 7 / 24})
    # P: query 10: 0, 1/2, 2/3; query 15: 0 -> 0, 1/4, 1/3
    assert hashnet["P"] == deephash["P"] == pytest.approx({1: 0.0, 2: 0.25, 3: 1 / 3})


# ---------------------------------------------------------------- a plain-loop reference


def reference(
    convention: str,
    query_class: int,
    ranking: list[int],
    pool: list[int],
    sims: np.ndarray,
    parents: list[int],
    k: int,
) -> dict[str, float]:
    """Per-query metrics at k straight from the definitions: ``ranking`` the result classes (-1
    missing), ``pool`` the classes of the database the best ranking is taken over."""
    top = ranking[:k]
    rel = [1 if c == query_class else 0 for c in top]
    precision = [sum(rel[: i + 1]) / (i + 1) for i in range(k)]
    gained = [sims[query_class, c] if c >= 0 else 0.0 for c in top]
    best = sorted((sims[query_class, c] for c in pool), reverse=True) + [0.0] * k

    def hp(i: int) -> float:
        denominator = sum(best[:i])
        return sum(gained[:i]) / denominator if denominator > 0 else 0.0

    if convention == "semret":
        relevant = pool.count(query_class)
        return {
            "mAP": sum(r * p for r, p in zip(rel, precision, strict=True)) / min(k, relevant) if relevant else 0.0,
            "mAHP": sum((hp(i) + hp(i + 1)) / 2 for i in range(1, k)) / k,
            "P": sum(rel) / k,
            "HP": hp(k),
        }
    if convention == "seed-002":
        matched = [c >= 0 and sims[query_class, c] == best[i] for i, c in enumerate(top)]
        distinct = len({c for c, m in zip(top, matched, strict=True) if m})
        return {
            "mAP": sum(r * p for r, p in zip(rel, precision, strict=True)) / k,
            "mAHP": sum(hp(i) for i in range(1, k + 1)) / k,
            "P": sum(rel) / k,
            "HP": hp(k),
            "balanced accuracy": 1.0 if all(matched) else distinct / (distinct + 1),
        }
    if convention == "seed-002-iwan":
        grade = [
            1.0 if c == query_class else 0.5 if c >= 0 and parents[c] == parents[query_class] != -1 else 0.0
            for c in top
        ]
        return {"mAP": sum(grade) / k, "mAHP": sum(gained) / k}
    hits = sum(rel)
    return {
        "mAP": sum(r * p for r, p in zip(rel, precision, strict=True)) / hits if hits else float("nan"),
        "P": sum(rel) / k,
    }


def reference_majority(ranking: list[int], k: int) -> int | None:
    """The most frequent class of the top k; a tie goes to the class seen first; None if no results."""
    found = [c for c in ranking[:k] if c >= 0]
    if not found:
        return None
    counts = Counter(found)
    return max(counts, key=lambda c: (counts[c], -found.index(c)))


def reference_pad(row: list[int], database_ids: list[int], leave_out: int | None) -> list[int]:
    fill = [i for i in database_ids if i not in row and i != leave_out]
    out = []
    for i in row:
        out.append(i if i >= 0 else (fill.pop(0) if fill else -1))
    return out


def random_case(seed: int) -> tuple[Ground, np.ndarray, np.ndarray]:
    """A small random database (4 classes, some with one image or none), similarities with ties,
    queries in the database or not, rankings with -1 padding."""
    rng = np.random.default_rng(seed)
    n, width = int(rng.integers(6, 16)), int(rng.integers(1, 8))
    database_ids = np.sort(rng.choice(100, n, replace=False))
    labels = rng.integers(0, 4, n)
    sims = rng.choice([0.0, 0.25, 0.5], (4, 4))
    sims = np.triu(sims, 1) + np.triu(sims, 1).T + np.eye(4)
    parents = rng.integers(-1, 2, 4)
    inside = bool(rng.integers(0, 2))
    n_queries = int(rng.integers(1, 6))
    if inside:
        rows = rng.choice(n, min(n_queries, n), replace=False)
        query_ids, query_labels = database_ids[rows], labels[rows]
    else:
        query_ids, query_labels = np.full(n_queries, -5), rng.integers(0, 4, n_queries)
    ids = np.full((len(query_ids), width), -1)
    with_query = np.full((len(query_ids), width), -1)
    for row, query in enumerate(query_ids):
        others = rng.permutation(database_ids[database_ids != query])
        found = int(rng.integers(0, min(width, len(others)) + 1))
        ids[row, :found] = others[:found]
        everything = rng.permutation(database_ids)
        found = int(rng.integers(0, min(width, n) + 1))
        with_query[row, :found] = everything[:found]
    return (
        Ground(database_ids, labels, query_labels, sims, inside, parents=parents, query_ids=query_ids),
        ids,
        with_query,
    )


def expected_scores(ground: Ground, ids: np.ndarray, with_query: np.ndarray, convention: str, missing: str) -> dict:
    """Every metric's mean over the queries at every k, by `reference`, with plain loops."""
    db_ids, db_labels = ground.database_ids.tolist(), ground.database_labels.tolist()
    label_of = dict(zip(db_ids, db_labels, strict=True))
    counts = CONVENTIONS[convention].query_counts and ground.queries_in_database
    rankings = with_query if counts else ids
    out: dict[str, dict[int, float]] = {m: {} for m in CONVENTIONS[convention].metrics}
    for k in range(1, ids.shape[1] + 1):
        per_query: list[dict[str, float]] = []
        majorities = []
        for row, query_class in enumerate(ground.query_labels.tolist()):
            query = int(ground.query_ids[row]) if ground.query_ids is not None else -5
            ranked = rankings[row].tolist()
            if missing == "pad":
                ranked = reference_pad(ranked, db_ids, None if counts or not ground.queries_in_database else query)
            classes = [label_of[i] if i >= 0 else -1 for i in ranked]
            pool = list(db_labels)
            if ground.queries_in_database and convention == "semret":
                pool.remove(query_class)
            per_query.append(
                reference(convention, query_class, classes, pool, ground.similarity, ground.parents.tolist(), k)
            )
            majorities.append(reference_majority(classes, k))
        for metric in out:
            if metric == "balanced accuracy" and convention == "semret":
                queries = ground.query_labels.tolist()
                recalls = [
                    np.mean([majorities[i] == c for i in range(len(queries)) if queries[i] == c]) for c in set(queries)
                ]
                out[metric][k] = float(np.mean(recalls))
                continue
            values = [q[metric] for q in per_query]
            if convention == "hashnet":
                scored = [v for v in values if not np.isnan(v)]
                out[metric][k] = float(np.mean(scored)) if scored else 0.0
            elif convention == "deephash-pytorch":
                out[metric][k] = sum(v for v in values if not np.isnan(v)) / len(values)
            else:
                out[metric][k] = float(np.mean(values))
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), missing=st.sampled_from(["zero", "pad"]))
def test_every_convention_equals_the_plain_loop_reference(seed: int, missing: str) -> None:
    ground, ids, with_query = random_case(seed)
    ks = list(range(1, ids.shape[1] + 1))
    for convention in CONVENTIONS:
        ours = score_rankings(ground, ids, ks, convention=convention, ids_with_query=with_query, missing=missing)
        theirs = expected_scores(ground, ids, with_query, convention, missing)
        for metric, per_k in theirs.items():
            for k, value in per_k.items():
                assert ours[metric][k] == pytest.approx(value, abs=1e-12), (convention, metric, k)


# ---------------------------------------------------------------- a perfect ranking


def _perfect(k_max: int = 250, per_class: int = 100, sibling: float = 0.75) -> tuple[Ground, np.ndarray]:
    """A CIFAR-100-shaped test protocol: 100 classes, 20 parents of 5, ``per_class`` images a class,
    the queries in the database (one per class); similarity 1 within a class, ``sibling`` under
    the same parent, else 0. Each query's results: the best ranking, the query left out."""
    classes = np.arange(100)
    parents = classes // 5
    sims = np.where(parents[:, None] == parents[None, :], sibling, 0.0)
    np.fill_diagonal(sims, 1.0)
    labels = np.repeat(classes, per_class)
    database_ids = np.arange(len(labels))
    query_ids = classes * per_class
    order = np.argsort(-sims[classes][:, labels], axis=1, kind="stable")
    ids = np.array([row[row != q][:k_max] for row, q in zip(order, query_ids, strict=True)])
    return Ground(database_ids, labels, classes, sims, True, parents=parents, query_ids=query_ids), ids


#: docs/metrics.md's perfect-ranking table: (convention, metric) -> (value at k = 1, at k = 250),
#: for 100 images a class (R = 99 with the query left out, 100 with it), 5 classes a parent, sibling
#: similarity 0.75 (the iwan values hang on those two: (99 + 0.5 x 151)/250, (99 + 0.75 x 151)/250)
PERFECT = {
    ("semret", "mAP"): (1.0, 1.0),
    ("semret", "mAHP"): (0.0, 249 / 250),
    ("semret", "P"): (1.0, 99 / 250),
    ("semret", "HP"): (1.0, 1.0),
    # at k = 250 the perfect ranking's 99 of the query's class are outnumbered by the 100 of the
    # first sibling class that follow them: every query's majority is that class
    ("semret", "balanced accuracy"): (1.0, 0.0),
    ("seed-002", "mAP"): (1.0, 100 / 250),
    ("seed-002", "mAHP"): (1.0, 1.0),
    ("seed-002", "P"): (1.0, 100 / 250),
    ("seed-002", "HP"): (1.0, 1.0),
    ("seed-002", "balanced accuracy"): (1.0, 1.0),
    ("seed-002-iwan", "mAP"): (1.0, (99 + 0.5 * 151) / 250),
    ("seed-002-iwan", "mAHP"): (1.0, (99 + 0.75 * 151) / 250),
    ("hashnet", "mAP"): (1.0, 1.0),
    ("hashnet", "P"): (1.0, 99 / 250),
    ("deephash-pytorch", "mAP"): (1.0, 1.0),
    ("deephash-pytorch", "P"): (1.0, 99 / 250),
}


def test_a_perfect_ranking_at_k_1_and_250() -> None:
    ground, ids = _perfect()
    # with the query: the query first, then its best ranking
    with_query = np.concatenate([ground.query_ids[:, None], ids[:, :-1]], axis=1)
    assert {c for c, _ in PERFECT} == set(CONVENTIONS)
    for convention in CONVENTIONS:
        scores = score_rankings(ground, ids, [1, 250], convention=convention, ids_with_query=with_query)
        for metric in CONVENTIONS[convention].metrics:
            at_1, at_250 = PERFECT[convention, metric]
            assert scores[metric][1] == pytest.approx(at_1), (convention, metric)
            assert scores[metric][250] == pytest.approx(at_250), (convention, metric)
