"""Retrieval metrics, vectorised over queries: P@k, AP@k / mAP@k, HP@k, AHP@k / mAHP@k, balanced
accuracy of the top-k labels.

Inputs are class indices: ``query_labels`` (q,), ``result_labels`` (q, K) for the ranked results
of each query (-1 where a query has fewer than K results; the query itself left out, except
under the conventions where it counts, `semret.evaluation.conventions`), and for the
hierarchical metrics the class similarity matrix and the labels of the whole database. Every
function returns one value per query; the mean over queries is the "m" metric.

Definitions (docs/metrics.md has them with their formulas):

- P@k: the share of the top k results whose class is the query's.
- AP@k: sum over i <= k of P@i x rel(i), divided by min(k, R), with R the number of images of the
  query's class in the database (the query excluded). For k = the whole database it is the
  classic average precision (scikit-learn's ``average_precision_score`` on the full ranking).
- HP@k (Deng, Berg & Fei-Fei, CVPR 2011, as Barz & Denzler compute it): the summed class
  similarity of the top k results, divided by the largest sum any k images of the database could
  give (the best possible ranking over the whole database, the query excluded).
- AHP@k: the area under HP@1..HP@k by the trapezoid rule with dx = 1/k.
- Balanced accuracy@k: each query is labelled with the most frequent class of its top k results
  (ties go to the class of the better-ranked result; a query with no result in its top k gets no
  label and counts as wrong); the mean over classes of the share of a class's queries so labelled
  correctly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

NO_LABEL = -1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_results(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, ks: Sequence[int]
) -> tuple[IntArray, IntArray]:
    """The labels as int64 arrays, checked: (queries,) and (queries, K) with every k in 1..K."""
    queries = np.asarray(query_labels, dtype=np.int64)
    results = np.asarray(result_labels, dtype=np.int64)
    if results.ndim != 2 or len(results) != len(queries):
        raise SemretError(f"result labels must be (queries, k) = ({len(queries)}, k), got {results.shape}")
    if not ks or min(ks) < 1 or max(ks) > results.shape[1]:
        raise SemretError(f"every k must be in 1..{results.shape[1]} (the results given), got {list(ks)}")
    return queries, results


def precision_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """P@k per query, for each k in ``ks``."""
    queries, results = check_results(query_labels, result_labels, ks)
    hits = np.cumsum(results == queries[:, None], axis=1)
    return {k: hits[:, k - 1] / k for k in ks}


def average_precision_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, relevant: npt.ArrayLike, ks: Sequence[int]
) -> dict[int, FloatArray]:
    """AP@k per query; ``relevant`` is R per query (images of its class in the database, itself excluded)."""
    queries, results = check_results(query_labels, result_labels, ks)
    totals = np.asarray(relevant, dtype=np.float64)
    hit = results == queries[:, None]
    precision = np.cumsum(hit, axis=1) / np.arange(1, results.shape[1] + 1)
    summed = np.cumsum(precision * hit, axis=1)
    out = {}
    for k in ks:
        denominator = np.minimum(k, totals)
        out[k] = np.divide(summed[:, k - 1], denominator, out=np.zeros(len(queries)), where=denominator > 0)
    return out


def best_similarities(
    similarity: npt.ArrayLike,
    database_labels: npt.ArrayLike,
    classes: npt.ArrayLike,
    depth: int,
    query_in_database: bool,
) -> FloatArray:
    """For each class in ``classes``, the class similarities of the best possible ranking of the
    database for a query of that class, rank by rank to ``depth`` (shape (len(classes), depth); 0
    past the end of the database).

    With ``query_in_database`` one image of the query's class (the query) is left out.
    """
    sims = np.asarray(similarity, dtype=np.float64)
    counts = np.bincount(np.asarray(database_labels, dtype=np.int64), minlength=len(sims)).astype(np.int64)
    out = np.zeros((len(np.asarray(classes)), depth))
    for row, cls in enumerate(np.asarray(classes, dtype=np.int64)):
        available = counts.copy()
        if query_in_database:
            available[cls] -= 1
        order = np.argsort(-sims[cls], kind="stable")
        values = np.repeat(sims[cls][order], np.maximum(available[order], 0))[:depth]
        out[row, : len(values)] = values
    return out


def best_cumulative_similarity(
    similarity: npt.ArrayLike,
    database_labels: npt.ArrayLike,
    classes: npt.ArrayLike,
    depth: int,
    query_in_database: bool,
) -> FloatArray:
    """For each class in ``classes``, the cumulative similarity sums of the best possible ranking of
    the database for a query of that class, to ``depth`` results (shape (len(classes), depth)).

    With ``query_in_database`` one image of the query's class (the query) is left out.
    """
    return np.cumsum(best_similarities(similarity, database_labels, classes, depth, query_in_database), axis=1)


def hierarchical_precision_curves(
    query_labels: npt.ArrayLike,
    result_labels: npt.ArrayLike,
    similarity: npt.ArrayLike,
    database_labels: npt.ArrayLike,
    depth: int,
    query_in_database: bool = True,
) -> FloatArray:
    """HP@1..HP@depth per query, shape (queries, depth); missing results count as similarity 0."""
    queries, results = check_results(query_labels, result_labels, [depth])
    sims = np.asarray(similarity, dtype=np.float64)
    gained = np.where(results[:, :depth] >= 0, sims[queries[:, None], np.maximum(results[:, :depth], 0)], 0.0)
    classes, inverse = np.unique(queries, return_inverse=True)
    best = best_cumulative_similarity(sims, database_labels, classes, depth, query_in_database)[inverse]
    return np.divide(np.cumsum(gained, axis=1), best, out=np.zeros_like(best), where=best > 0)


def hierarchical_precision_at_k(curves: FloatArray, ks: Sequence[int]) -> dict[int, FloatArray]:
    """HP@k per query from `hierarchical_precision_curves`."""
    return {k: curves[:, k - 1] for k in ks}


def average_hierarchical_precision_at_k(curves: FloatArray, ks: Sequence[int]) -> dict[int, FloatArray]:
    """AHP@k per query: the trapezoid area under HP@1..HP@k with dx = 1/k (Barz & Denzler)."""
    return {k: np.asarray(np.trapezoid(curves[:, :k], dx=1.0 / k, axis=1), dtype=np.float64) for k in ks}


def balanced_accuracy_at_k(
    query_labels: npt.ArrayLike, result_labels: npt.ArrayLike, ks: Sequence[int], n_classes: int
) -> dict[int, float]:
    """Balanced accuracy of the majority label of the top k results, for each k.

    A tie of counts goes to the class whose first result ranks best; a query with no result in its
    top k gets no label (``NO_LABEL``: ``np.argmax`` of all-zero votes would say class 0) and so is
    never right.
    """
    queries, results = check_results(query_labels, result_labels, ks)
    rows_of = np.arange(len(queries))
    out = {}
    for k in ks:
        top = results[:, :k]
        rows = np.repeat(rows_of, k)
        columns = np.where(top >= 0, top, n_classes).ravel()
        counts = np.zeros((len(queries), n_classes + 1), dtype=np.int64)
        np.add.at(counts, (rows, columns), 1)
        first = np.full((len(queries), n_classes + 1), k, dtype=np.int64)
        np.minimum.at(first, (rows, columns), np.tile(np.arange(k), len(queries)))
        # the count first, then the better first rank: count x (k + 1) + (k - first rank), exact
        key = counts[:, :n_classes] * (k + 1) + (k - first[:, :n_classes])
        found = counts[:, :n_classes].any(axis=1)
        predicted = np.where(found, np.argmax(key, axis=1), NO_LABEL)
        recalls = [np.mean(predicted[queries == c] == c) for c in np.unique(queries)]
        out[k] = float(np.mean(recalls))
    return out
