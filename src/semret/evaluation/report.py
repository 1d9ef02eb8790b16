"""What an evaluation run leaves behind: tables (methods x k per metric, as the published tables),
``results.json`` (every number, the configuration and the versions), ``rankings.npz`` (each
method's ranked ids per query) and PNG plots (mAP@k and mAHP@k against k; query time per method).
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from semret import __version__
from semret.evaluation.runs import EvalResult
from semret.evaluation.scoring import METRICS

RESULTS_FILE = "results.json"
RANKINGS_FILE = "rankings.npz"
PLOT_FILES = {"mAP": "map_at_k.png", "mAHP": "mahp_at_k.png", "time": "query_time.png"}
#: The packages whose versions a result depends on.
PACKAGES = ("numpy", "scipy", "torch", "torchvision", "faiss-cpu", "networkx", "sqlalchemy", "psycopg")


def versions() -> dict[str, str]:
    """semret's, Python's and the main packages' versions, and the platform."""
    found = {"semret": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def timing(result: EvalResult, method: str) -> dict[str, float]:
    """A method's build time and query times (mean, median, 99th percentile), in seconds / ms."""
    seconds = result.runs[method].query_seconds
    return {
        "build_seconds": result.runs[method].build_seconds,
        "query_ms_mean": float(1000 * seconds.mean()),
        "query_ms_p50": float(1000 * np.percentile(seconds, 50)),
        "query_ms_p99": float(1000 * np.percentile(seconds, 99)),
    }


def results_document(result: EvalResult) -> dict[str, Any]:
    """Everything of a run as plain JSON-able data (a database password is not written)."""
    config = asdict(result.config)
    return {
        "semret_results": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        # the summary holds the URL as the run described it, password hidden
        "config": {**config, "database_url": config["database_url"] and result.summary["database_url"]},
        "versions": versions(),
        "summary": {**result.summary, "collection": result.collection},
        "methods": {
            method: {
                "metrics": {metric: {str(k): v for k, v in values.items()} for metric, values in scores.items()},
                "timing": timing(result, method),
                "details": result.runs[method].details,
            }
            for method, scores in result.scores.items()
        },
    }


def write_results(result: EvalResult, out: Path) -> dict[str, Path]:
    """Write results.json, rankings.npz and the plots into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / RESULTS_FILE
    results.write_text(json.dumps(results_document(result), indent=2, default=_plain) + "\n", encoding="utf-8")
    rankings = out / RANKINGS_FILE
    arrays = {"query_ids": result.query_ids, "database_ids": result.database_ids}
    arrays.update({f"ids_{method}": run.ids for method, run in result.runs.items()})
    np.savez_compressed(rankings, **arrays)  # type: ignore[arg-type]
    written = {"results": results, "rankings": rankings}
    written.update(write_plots(result, out))
    return written


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays, and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def metric_table(result: EvalResult, metric: str) -> Table:
    """One metric: a row per method, a column per k (the best value of each column in bold)."""
    ks = sorted(result.config.ks)
    table = Table(title=f"{metric}@k — {result.summary['dataset']}, {result.summary['backbone']['name']}")
    table.add_column("method")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    best = {k: max(scores[metric][k] for scores in result.scores.values()) for k in ks}
    for method, scores in result.scores.items():
        cells = [f"{scores[metric][k]:.4f}" for k in ks]
        cells = [f"[bold]{c}[/bold]" if scores[metric][k] == best[k] else c for c, k in zip(cells, ks, strict=True)]
        table.add_row(method, *cells)
    return table


def timing_table(result: EvalResult) -> Table:
    """Build and query times per method."""
    table = Table(title=f"time — {result.summary['queries']:,} queries, {result.summary['database_images']:,} images")
    for column in ("method", "build s", "query ms (mean)", "p50", "p99"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method in result.runs:
        times = timing(result, method)
        table.add_row(
            method,
            f"{times['build_seconds']:.2f}",
            f"{times['query_ms_mean']:.3f}",
            f"{times['query_ms_p50']:.3f}",
            f"{times['query_ms_p99']:.3f}",
        )
    return table


def tables(result: EvalResult, metrics: tuple[str, ...] = METRICS) -> list[Table]:
    """A table per metric, then the timing table."""
    return [metric_table(result, metric) for metric in metrics] + [timing_table(result)]


def markdown_table(result: EvalResult, metric: str) -> str:
    """A metric as a Markdown table (methods x k), for docs."""
    ks = sorted(result.config.ks)
    lines = ["| method | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method, scores in result.scores.items():
        lines.append(f"| {method} | " + " | ".join(f"{scores[metric][k]:.4f}" for k in ks) + " |")
    return "\n".join(lines)


def write_plots(result: EvalResult, out: Path) -> dict[str, Path]:
    """mAP@k and mAHP@k against k (a line per method), and the mean query time per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(result.config.ks)
    title = f"{result.summary['dataset']}, {result.summary['backbone']['name']}, {result.summary['queries']:,} queries"
    written = {}
    for metric in ("mAP", "mAHP"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for method, scores in result.scores.items():
            axes.plot(ks, [scores[metric][k] for k in ks], marker="o", label=method)
        axes.set_xscale("log")
        axes.set_xticks(ks, [str(k) for k in ks])
        axes.set_xlabel("k")
        axes.set_ylabel(f"{metric}@k")
        axes.set_title(title, fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = out / PLOT_FILES[metric]
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written[metric] = path
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    methods = list(result.runs)
    means = [timing(result, m)["query_ms_mean"] for m in methods]
    axes.barh(methods, means)
    axes.set_xscale("log")
    axes.set_xlabel("mean query time (ms, log scale)")
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10)
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    path = out / PLOT_FILES["time"]
    figure.savefig(path, dpi=120)
    plt.close(figure)
    written["time"] = path
    return written
