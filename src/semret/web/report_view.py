"""An evaluation report (`semret.app.report_models.EvalReport`) as a page shows it: a table per
convention and metric (methods x k, the best of each column marked, as `semret eval` prints
them), the timing table, and the report's pictures."""

from __future__ import annotations

from typing import Any

from semret.app.report_models import EvalReport
from semret.errors import SemretError
from semret.evaluation.conventions import constant_value


def _constant(convention: str, metric: str, k: int) -> bool:
    """Whether the metric is the same for every ranking at k (printed "-", as `semret eval` does)."""
    try:
        return constant_value(convention, metric, k) is not None
    except SemretError:  # a convention this semret does not know: shown as it is
        return False


def _sorted_ks(values: dict[str, float]) -> list[str]:
    return sorted(values, key=lambda k: int(k) if k.isdigit() else k)


def report_view(report: EvalReport) -> dict[str, Any]:
    """What the report page (and its JSON) shows."""
    document = report.document
    methods = report.methods
    tables = []
    for convention in document.get("config", {}).get("conventions", []):
        metrics: list[str] = []
        for details in methods.values():
            for metric in details.get("conventions", {}).get(convention, {}):
                if metric not in metrics:
                    metrics.append(metric)
        for metric in metrics:
            ks: list[str] = []
            for details in methods.values():
                for k in _sorted_ks(details.get("conventions", {}).get(convention, {}).get(metric, {})):
                    if k not in ks:
                        ks.append(k)
            ks = sorted(ks, key=lambda k: int(k) if k.isdigit() else k)
            values = {
                method: details.get("conventions", {}).get(convention, {}).get(metric, {})
                for method, details in methods.items()
            }
            best = {k: max((v[k] for v in values.values() if k in v), default=None) for k in ks}
            blank = {k for k in ks if k.isdigit() and _constant(convention, metric, int(k))}
            rows = [
                {
                    "method": method,
                    "cells": [
                        {
                            "value": scores.get(k),
                            "text": "" if scores.get(k) is None else "-" if k in blank else f"{scores[k]:.4f}",
                            "best": k not in blank and scores.get(k) is not None and scores.get(k) == best[k],
                        }
                        for k in ks
                    ],
                }
                for method, scores in values.items()
            ]
            tables.append({"convention": convention, "metric": metric, "ks": ks, "rows": rows})
    timing = [{"method": method, **details.get("timing", {})} for method, details in methods.items()]
    return {
        "name": report.name,
        "created": document.get("created"),
        "collection": report.collection,
        "summary": document.get("summary", {}),
        "config": document.get("config", {}),
        "methods": list(methods),
        "tables": tables,
        "timing": timing,
        "pictures": list(report.pictures),
    }
