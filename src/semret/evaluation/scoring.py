"""Score rankings: from each method's ranked result ids to its metrics at every k, by a metric
convention (`semret.evaluation.conventions`; semret's own by default: mAP@k, mAHP@k, P@k, HP@k and
balanced accuracy@k, defined in `semret.evaluation.metrics` and docs/metrics.md).

The rankings are image ids of the database, ``-1`` where a method found fewer results; in ``ids``
the query itself is already left out (the searchers' ``exclude_ids``, `semret.core.search`). The
conventions where the query counts (seed-002) score ``ids_with_query`` instead, a ranking the query
may appear in, when the queries are in the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.evaluation.conventions import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    average_precision_over_k,
    get_convention,
    hit_average_precision_at_k,
    matched_balanced_accuracy_at_k,
    mean_hierarchical_precision_at_k,
    mean_similarity_at_k,
    parent_graded_precision_at_k,
)
from semret.evaluation.metrics import (
    NO_LABEL,
    average_hierarchical_precision_at_k,
    average_precision_at_k,
    balanced_accuracy_at_k,
    hierarchical_precision_at_k,
    hierarchical_precision_curves,
    precision_at_k,
)

#: The metrics `score_rankings` gives by semret's convention, in the order the tables show them.
METRICS = tuple(CONVENTIONS[DEFAULT_CONVENTION].metrics)

#: How the places of a ranking with fewer than k results are scored: "zero" (semret's default:
#: a missing result gains nothing) or "pad" (filled with the rest of the database in id order).
MISSING = ("zero", "pad")

IdArray = npt.NDArray[np.int64]
Scores = dict[str, dict[int, float]]


@dataclass(frozen=True)
class Ground:
    """What scoring needs to know of the data: the database's ids and labels, the queries' labels,
    the class similarity matrix, and whether the queries are in the database.

    ``parents`` (seed-002-iwan only): for each class index, its parent node in the class hierarchy
    (any integer id; two classes with the same parent are siblings; -1 for none). ``query_ids``
    (``missing="pad"`` with the queries in the database only): each query's image id, so that
    padding leaves it out.
    """

    database_ids: npt.NDArray[np.int64]
    database_labels: npt.NDArray[np.int64]
    query_labels: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float64]
    queries_in_database: bool
    parents: npt.NDArray[np.int64] | None = None
    query_ids: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        if len(self.database_ids) != len(self.database_labels):
            raise SemretError("database ids and labels differ in length")
        if np.any(np.diff(self.database_ids) <= 0):
            raise SemretError("database ids must be sorted and distinct")
        if self.parents is not None and np.shape(self.parents) != (len(self.similarity),):
            raise SemretError(f"parents must give one parent per class ({len(self.similarity)})")
        if self.query_ids is not None and np.shape(self.query_ids) != np.shape(self.query_labels):
            raise SemretError("query ids and labels differ in length")

    def labels_of(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The label of each result id (``NO_LABEL`` for -1); an id not in the database is an error."""
        positions = np.clip(np.searchsorted(self.database_ids, ids), 0, len(self.database_ids) - 1)
        found = self.database_ids[positions] == ids
        missing = (ids >= 0) & ~found
        if missing.any():
            raise SemretError(f"result id {int(ids[missing][0])} is not in the database")
        return np.where(found, self.database_labels[positions], NO_LABEL)

    def relevant_counts(self) -> npt.NDArray[np.int64]:
        """R per query: the database images of its class, itself left out."""
        counts = np.bincount(self.database_labels, minlength=len(self.similarity))
        return counts[self.query_labels] - (1 if self.queries_in_database else 0)


def pad_rankings(ids: IdArray, database_ids: IdArray, exclude: IdArray | None = None) -> IdArray:
    """``ids`` with each row's -1 places filled, in order, by the database ids not yet in that row
    (nor ``exclude[row]``, the query where it is left out), smallest id first: the rest of the
    database in id order, as Barz & Denzler's evaluation ranks it. A row stays -1 where the
    database runs out."""
    out = np.array(ids, dtype=np.int64, copy=True)
    rows = np.flatnonzero((out < 0).any(axis=1))
    if len(rows) == 0:
        return out
    sub = out[rows]
    # the fill comes from the first K + 1 + K database ids: at most K are in the row, one is the query
    width = min(len(database_ids), 2 * sub.shape[1] + 1)
    taken = np.zeros((len(rows), width), dtype=bool)
    placed = [sub] if exclude is None else [sub, np.asarray(exclude, dtype=np.int64)[rows][:, None]]
    for block in placed:
        position = np.searchsorted(database_ids, block)
        inside = (block >= 0) & (position < width)
        row_of = np.broadcast_to(np.arange(len(rows))[:, None], block.shape)
        taken[row_of[inside], position[inside]] = True
    free = ~taken
    holes = sub < 0
    wanted = holes.sum(axis=1)
    chosen = free & (np.cumsum(free, axis=1) <= wanted[:, None])
    filled = holes & (np.cumsum(holes, axis=1) <= chosen.sum(axis=1)[:, None])
    sub[filled] = database_ids[np.nonzero(chosen)[1]]
    out[rows] = sub
    return out


def score_rankings(
    ground: Ground,
    ids: IdArray,
    ks: Sequence[int],
    *,
    convention: str = DEFAULT_CONVENTION,
    ids_with_query: IdArray | None = None,
    missing: str = "zero",
) -> Scores:
    """Every metric of ``convention`` at every k: the mean over the queries.

    ``ids`` is (queries, max k), the query left out; ``ids_with_query`` (same shape) is the ranking
    the query may appear in, needed by a convention where the query counts when the queries are in
    the database (otherwise ``ids`` serves). ``missing`` says how places past a method's last result
    are scored (`MISSING`).
    """
    known = get_convention(convention)
    if missing not in MISSING:
        raise SemretError(f"missing must be one of {', '.join(MISSING)}, got {missing!r}")
    shape = (len(ground.query_labels), max(ks))
    if ids.shape != shape:
        raise SemretError(f"rankings must be (queries, max k) = {shape}, got {ids.shape}")
    ranked, exclude = ids, ground.query_ids if ground.queries_in_database else None
    if known.query_counts and ground.queries_in_database:
        if ids_with_query is None:
            raise SemretError(
                f"convention {convention!r} counts the query: give ids_with_query, the rankings with the query in them"
            )
        if ids_with_query.shape != shape:
            raise SemretError(f"rankings with the query must be (queries, max k) = {shape}, got {ids_with_query.shape}")
        ranked, exclude = ids_with_query, None
    if missing == "pad":
        if ground.queries_in_database and ranked is ids and exclude is None:
            raise SemretError("missing='pad' with the queries in the database needs Ground.query_ids")
        ranked = pad_rankings(ranked, ground.database_ids, exclude)
    labels = ground.labels_of(ranked)
    return _SCORERS[known.name](ground, labels, list(ks))


def _means(values: dict[int, npt.NDArray[np.float64]]) -> dict[int, float]:
    return {k: float(np.mean(v)) for k, v in values.items()}


def _semret(ground: Ground, labels: IdArray, ks: list[int]) -> Scores:
    curves = hierarchical_precision_curves(
        ground.query_labels, labels, ground.similarity, ground.database_labels, max(ks), ground.queries_in_database
    )
    return {
        "mAP": _means(average_precision_at_k(ground.query_labels, labels, ground.relevant_counts(), ks)),
        "mAHP": _means(average_hierarchical_precision_at_k(curves, ks)),
        "P": _means(precision_at_k(ground.query_labels, labels, ks)),
        "HP": _means(hierarchical_precision_at_k(curves, ks)),
        "balanced accuracy": balanced_accuracy_at_k(ground.query_labels, labels, ks, len(ground.similarity)),
    }


def _seed_002(ground: Ground, labels: IdArray, ks: list[int]) -> Scores:
    # the best ranking is over the whole database, the query included (never one image left out)
    curves = hierarchical_precision_curves(
        ground.query_labels, labels, ground.similarity, ground.database_labels, max(ks), False
    )
    return {
        "mAP": _means(average_precision_over_k(ground.query_labels, labels, ks)),
        "mAHP": _means(mean_hierarchical_precision_at_k(curves, ks)),
        "P": _means(precision_at_k(ground.query_labels, labels, ks)),
        "HP": _means(hierarchical_precision_at_k(curves, ks)),
        "balanced accuracy": _means(
            matched_balanced_accuracy_at_k(ground.query_labels, labels, ground.similarity, ground.database_labels, ks)
        ),
    }


def _seed_002_iwan(ground: Ground, labels: IdArray, ks: list[int]) -> Scores:
    if ground.parents is None:
        raise SemretError("convention 'seed-002-iwan' needs Ground.parents, each class's parent in the hierarchy")
    return {
        "mAP": _means(parent_graded_precision_at_k(ground.query_labels, labels, ground.parents, ks)),
        "mAHP": _means(mean_similarity_at_k(ground.query_labels, labels, ground.similarity, ks)),
    }


def _hit_means(values: dict[int, npt.NDArray[np.float64]], skip: bool) -> dict[int, float]:
    out = {}
    for k, v in values.items():
        scored = v[~np.isnan(v)]
        out[k] = (float(np.mean(scored)) if len(scored) else 0.0) if skip else float(np.sum(scored) / len(v))
    return out


def _hashnet(ground: Ground, labels: IdArray, ks: list[int]) -> Scores:
    return {
        "mAP": _hit_means(hit_average_precision_at_k(ground.query_labels, labels, ks), skip=True),
        "P": _means(precision_at_k(ground.query_labels, labels, ks)),
    }


def _deephash(ground: Ground, labels: IdArray, ks: list[int]) -> Scores:
    return {
        "mAP": _hit_means(hit_average_precision_at_k(ground.query_labels, labels, ks), skip=False),
        "P": _means(precision_at_k(ground.query_labels, labels, ks)),
    }


_SCORERS: dict[str, Callable[[Ground, IdArray, list[int]], Scores]] = {
    "semret": _semret,
    "seed-002": _seed_002,
    "seed-002-iwan": _seed_002_iwan,
    "hashnet": _hashnet,
    "deephash-pytorch": _deephash,
}
