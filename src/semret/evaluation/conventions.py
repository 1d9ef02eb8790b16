"""Metric conventions: named sets of metric definitions, semret's own and those of the published
code that semret's numbers are compared with (docs/metrics.md has them side by side).

Published tables disagree on what "mAP@k" and "mAHP@k" mean: whether the query counts among its
own results, what AP@k is divided by, whether AHP@k is a trapezoid or a mean. A convention names
one such set; `semret.evaluation.scoring.score_rankings` scores a ranking by any of them. semret's
own ("semret", `DEFAULT_CONVENTION`) is unchanged.

The per-query functions here take class labels as `semret.evaluation.metrics` does (``-1`` where a
result is missing) and return one value per query, vectorised over queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.evaluation.metrics import NO_LABEL, FloatArray, best_similarities, check_results


@dataclass(frozen=True)
class Convention:
    """A named set of metric definitions.

    ``metrics`` maps each metric the convention gives (the names `score_rankings` returns, in
    table order) to a one-line definition; ``query_counts`` says whether the query is among its
    own results (scored from the ranking with the query in it when the queries are in the
    database); ``source`` says where the definitions come from.
    """

    name: str
    source: str
    metrics: dict[str, str]
    query_counts: bool


_RAMP = "rel(i) = 1 when result i is of the query's class, P@i the share of the top i that are"

CONVENTIONS: dict[str, Convention] = {
    convention.name: convention
    for convention in (
        Convention(
            name="semret",
            source=(
                "semret's own (docs/metrics.md): AP as scikit-learn's average precision cut at k, "
                "HP and AHP as Barz & Denzler's evaluation (WACV 2019, cvjena/semantic-embeddings)"
            ),
            metrics={
                "mAP": f"mean of sum_{{i<=k}} rel(i) P@i / min(k, R), R the query's class in the database "
                f"less the query (0 when R = 0); {_RAMP}",
                "mAHP": "mean of the trapezoid area under HP@1..HP@k with dx = 1/k (0 at k = 1)",
                "P": "mean share of the top k of the query's class, the query left out",
                "HP": "summed class similarity of the top k / the best sum any k database images "
                "give, the query left out",
                "balanced accuracy": "mean over classes of the share of queries whose top k's most "
                "frequent class (ties: the better first rank; no results: no class) is their own",
            },
            query_counts=False,
        ),
        Convention(
            name="seed-002",
            source=(
                "seed report 002 (CIFAR-100, Algorithm 2): evaluate_retrieval.py of "
                "github.com/rounaksaha12/Information-Retrieval-CBIR-project, called by test_model.py"
            ),
            metrics={
                "mAP": f"mean of sum_{{i<=k}} rel(i) P@i / k, the query in the ranking and counting; {_RAMP}",
                "mAHP": "mean of (HP@1 + ... + HP@k) / k, HP as below",
                "P": "mean share of the top k of the query's class, the query counting",
                "HP": "summed class similarity of the top k / the best sum any k database images "
                "give, the query included",
                "balanced accuracy": "mean of scikit-learn's balanced accuracy of the top k's labels "
                "against themselves where a result's similarity is the best ranking's at its rank, "
                "else a class of its own: D / (D + 1), D the distinct classes so matched (1 if all are)",
            },
            query_counts=True,
        ),
        Convention(
            name="seed-002-iwan",
            source=(
                "seed report 002 (CIFAR-100, IWAN): evaluate_predictions of the project's IWAN retrieval "
                "script (public code index; the database is the train split, so the query is never a result)"
            ),
            metrics={
                "mAP": "mean over the top k of 1 (the query's class), 0.5 (another class of the same "
                "parent: CIFAR-100's coarse label, elsewhere the hierarchy's parent), 0 (otherwise), "
                "the query left out",
                "mAHP": "mean class similarity (the class-embedding dot product) of the top k, the query left out",
            },
            query_counts=False,
        ),
        Convention(
            name="hashnet",
            source=(
                "HashNet (Cao et al., ICCV 2017): mean_average_precision in pytorch/src/test.py of "
                "github.com/thuml/HashNet; likely seeds 000 and 001's MAP"
            ),
            metrics={
                "mAP": f"sum_{{i<=k}} rel(i) P@i / (relevant results in the top k), the mean over the "
                f"queries with at least one (0 if none has); {_RAMP}",
                "P": "mean share of the top k of the query's class, the query left out",
            },
            query_counts=False,
        ),
        Convention(
            name="deephash-pytorch",
            source="CalcTopMap in utils/tools.py of github.com/swuxyj/DeepHash-pytorch",
            metrics={
                "mAP": "sum_{i<=k} rel(i) P@i / (relevant results in the top k), the mean over all "
                "queries (a query with none counts 0)",
                "P": "mean share of the top k of the query's class, the query left out",
            },
            query_counts=False,
        ),
    )
}

DEFAULT_CONVENTION = "semret"


def get_convention(name: str) -> Convention:
    """The convention called ``name``; an unknown name is a one-line error listing the known ones."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SemretError(f"unknown metric convention {name!r}; known: {', '.join(CONVENTIONS)}") from None


def trapezoid_ahp_ceiling(k: int) -> float:
    """The largest trapezoid AHP@k (semret's, Barz & Denzler's): a perfect ranking has HP@i = 1 for
    every i, and the trapezoid over k points with dx = 1/k is then (k - 1) / k."""
    if k < 1:
        raise SemretError(f"k must be at least 1, got {k}")
    return (k - 1) / k


def degenerate(convention: str, metric: str, k: int, *, queries_in_database: bool = True) -> str | None:
    """A note where a metric's value at k says nothing of the method (None elsewhere).

    semret's mAHP@1 is 0 for every method (a trapezoid over one point); under seed-002, when the
    queries are in the database, every metric at k = 1 is 1 for a method that ranks the query first.
    """
    known = get_convention(convention)
    if metric not in known.metrics:
        raise SemretError(f"convention {convention!r} gives no {metric!r}; it gives {', '.join(known.metrics)}")
    if convention == "semret" and metric == "mAHP" and k == 1:
        return "0 by definition (trapezoid over one point)"
    if known.query_counts and queries_in_database and k == 1:
        return "1 for any method that ranks the query first (the query counts)"
    return None


def constant_value(convention: str, metric: str, k: int) -> float | None:
    """The value a metric takes at k for every ranking, where it has one: semret's mAHP@1 is 0
    (the trapezoid over one point). Tables print such a cell "-" with `degenerate`'s note."""
    get_convention(convention)
    return 0.0 if convention == "semret" and metric == "mAHP" and k == 1 else None


def _hits(queries: npt.NDArray[np.int64], results: npt.NDArray[np.int64]) -> FloatArray:
    return np.asarray(results == queries[:, None], dtype=np.float64)


def average_precision_over_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """seed-002's AP@k per query: sum over i <= k of rel(i) x P@i, divided by k (evaluate_retrieval.py:
    ``precision_array[j] /= k_list[j]``)."""
    queries, results = check_results(query_labels, result_labels, ks)
    hit = _hits(queries, results)
    summed = np.cumsum(np.cumsum(hit, axis=1) / np.arange(1, results.shape[1] + 1) * hit, axis=1)
    return {k: summed[:, k - 1] / k for k in ks}


def mean_hierarchical_precision_at_k(curves: FloatArray, ks: Sequence[int]) -> dict[int, FloatArray]:
    """seed-002's AHP@k per query: the mean of HP@1..HP@k (evaluate_retrieval.py sums ``csum/deno``
    over the first k ranks and divides by k), from `metrics.hierarchical_precision_curves`."""
    cumulative = np.cumsum(curves, axis=1)
    return {k: cumulative[:, k - 1] / k for k in ks}


def hit_average_precision_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """HashNet's and DeepHash-pytorch's AP@k per query: sum over i <= k of rel(i) x P@i, divided by
    the relevant results in the top k; NaN for a query with none (HashNet leaves it out of the mean,
    DeepHash-pytorch's CalcTopMap counts it 0)."""
    queries, results = check_results(query_labels, result_labels, ks)
    hit = _hits(queries, results)
    found = np.cumsum(hit, axis=1)
    summed = np.cumsum(found / np.arange(1, results.shape[1] + 1) * hit, axis=1)
    return {
        k: np.divide(summed[:, k - 1], found[:, k - 1], out=np.full(len(queries), np.nan), where=found[:, k - 1] > 0)
        for k in ks
    }


def parent_graded_precision_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, parents: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """seed-002-iwan's "AP@k" per query: the mean over the top k of 1 (the query's class), 0.5 (a
    class of the same parent; ``parents[c]`` is class c's parent node, -1 for none) or 0."""
    queries, results = check_results(query_labels, result_labels, ks)
    parent_of = np.asarray(parents, dtype=np.int64)
    query_parent = parent_of[queries][:, None]
    result_parent = np.where(results >= 0, parent_of[np.maximum(results, 0)], NO_LABEL)
    sibling = (results >= 0) & (result_parent == query_parent) & (query_parent != NO_LABEL)
    gain = np.where(results == queries[:, None], 1.0, np.where(sibling, 0.5, 0.0))
    cumulative = np.cumsum(gain, axis=1)
    return {k: cumulative[:, k - 1] / k for k in ks}


def mean_similarity_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, similarity: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """seed-002-iwan's "AHP@k" per query: the mean class similarity of the top k (a missing result 0)."""
    queries, results = check_results(query_labels, result_labels, ks)
    sims = np.asarray(similarity, dtype=np.float64)
    gained = np.where(results >= 0, sims[queries[:, None], np.maximum(results, 0)], 0.0)
    cumulative = np.cumsum(gained, axis=1)
    return {k: cumulative[:, k - 1] / k for k in ks}


def matched_balanced_accuracy_at_k(
    query_labels: npt.ArrayLike,
    result_labels: npt.ArrayLike,
    similarity: npt.ArrayLike,
    database_labels: npt.ArrayLike,
    ks: Sequence[int],
) -> dict[int, FloatArray]:
    """seed-002's balanced accuracy@k per query (evaluate_retrieval.py): scikit-learn's
    ``balanced_accuracy_score(y_true, y_pred)`` over the top k, y_pred the results' labels, y_true
    the label where the result's similarity to the query equals the best ranking's at that rank
    (the database with the query, ``class_sim_matrix[query_label][i//100]`` there) and a class of
    its own otherwise. Each matched class has recall 1 and the own class (if any) 0: D / (D + 1),
    D the distinct matched classes, or 1 when every result matches. A missing result never matches.
    """
    queries, results = check_results(query_labels, result_labels, ks)
    depth = max(ks)
    sims = np.asarray(similarity, dtype=np.float64)
    classes, inverse = np.unique(queries, return_inverse=True)
    ideal = best_similarities(sims, database_labels, classes, depth, False)[inverse]
    gained = sims[queries[:, None], np.maximum(results[:, :depth], 0)]
    matched = (results[:, :depth] >= 0) & (gained == ideal)
    # D at each depth: count each class the first time it matches, along the ranking
    key = np.where(matched, results[:, :depth], -1)
    first = np.zeros_like(matched)
    order = np.argsort(key, axis=1, kind="stable")
    ranked = np.take_along_axis(key, order, axis=1)
    starts = np.ones_like(matched)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    np.put_along_axis(first, order, starts & (ranked >= 0), axis=1)
    distinct = np.cumsum(first, axis=1)
    wrong = np.cumsum(~matched, axis=1)
    out = {}
    for k in ks:
        d, w = distinct[:, k - 1].astype(np.float64), wrong[:, k - 1]
        out[k] = np.where(w == 0, 1.0, d / (d + 1.0))
    return out
