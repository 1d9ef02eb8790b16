"""Evaluation: retrieval metrics (P@k, mAP@k, mAHP@k, balanced accuracy) by named metric conventions,
batch runs, tables and plots; `load_results` reads one or more runs' results.csv into a pandas
DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semret.evaluation.conventions import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    Convention,
    degenerate,
    get_convention,
    trapezoid_ahp_ceiling,
)
from semret.evaluation.scoring import METRICS, MISSING, Ground, pad_rankings, score_rankings

if TYPE_CHECKING:
    from semret.evaluation.results_table import load_results

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "METRICS",
    "MISSING",
    "Convention",
    "Ground",
    "degenerate",
    "get_convention",
    "load_results",
    "pad_rankings",
    "score_rankings",
    "trapezoid_ahp_ceiling",
]


def __getattr__(name: str) -> Any:
    """`load_results` on first use, so that importing the package does not import pandas."""
    if name == "load_results":
        from semret.evaluation.results_table import load_results

        return load_results
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
