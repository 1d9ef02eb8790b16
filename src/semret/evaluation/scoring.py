"""Score rankings: from each method's ranked result ids to mAP@k, mAHP@k, P@k, HP@k and balanced
accuracy@k (the definitions are in `semret.evaluation.metrics` and docs/metrics.md).

The rankings are image ids of the database, ``-1`` where a method found fewer results; the query
itself must already be left out (the searchers' ``exclude_ids``, `semret.core.search`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.evaluation.metrics import (
    NO_LABEL,
    average_hierarchical_precision_at_k,
    average_precision_at_k,
    balanced_accuracy_at_k,
    hierarchical_precision_at_k,
    hierarchical_precision_curves,
    precision_at_k,
)

#: The metrics `score_rankings` gives, in the order the tables show them.
METRICS = ("mAP", "mAHP", "P", "HP", "balanced accuracy")


@dataclass(frozen=True)
class Ground:
    """What scoring needs to know of the data: the database's ids and labels, the queries' labels,
    the class similarity matrix, and whether the queries are in the database."""

    database_ids: npt.NDArray[np.int64]
    database_labels: npt.NDArray[np.int64]
    query_labels: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float64]
    queries_in_database: bool

    def __post_init__(self) -> None:
        if len(self.database_ids) != len(self.database_labels):
            raise SemretError("database ids and labels differ in length")
        if np.any(np.diff(self.database_ids) <= 0):
            raise SemretError("database ids must be sorted and distinct")

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


def score_rankings(ground: Ground, ids: npt.NDArray[np.int64], ks: Sequence[int]) -> dict[str, dict[int, float]]:
    """Every metric of `METRICS` at every k: the mean over the queries (``ids`` is (queries, max k))."""
    if ids.shape != (len(ground.query_labels), max(ks)):
        raise SemretError(
            f"rankings must be (queries, max k) = ({len(ground.query_labels)}, {max(ks)}), got {ids.shape}"
        )
    labels = ground.labels_of(ids)
    curves = hierarchical_precision_curves(
        ground.query_labels, labels, ground.similarity, ground.database_labels, max(ks), ground.queries_in_database
    )

    def means(values: dict[int, npt.NDArray[np.float64]]) -> dict[int, float]:
        return {k: float(np.mean(v)) for k, v in values.items()}

    return {
        "mAP": means(average_precision_at_k(ground.query_labels, labels, ground.relevant_counts(), ks)),
        "mAHP": means(average_hierarchical_precision_at_k(curves, ks)),
        "P": means(precision_at_k(ground.query_labels, labels, ks)),
        "HP": means(hierarchical_precision_at_k(curves, ks)),
        "balanced accuracy": balanced_accuracy_at_k(ground.query_labels, labels, ks, len(ground.similarity)),
    }
