"""What an evaluation run leaves behind: tables (methods x k per convention and metric, as the
published tables), ``results.json`` (every number, each metric's convention, the configuration and
the versions), ``results.csv`` (the tidy table of `semret.evaluation.results_table`),
``rankings.npz`` (each method's ranked ids per query) and PNG plots (mAP@k and mAHP@k against k;
query time per method).
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
from semret.evaluation.conventions import CONVENTIONS, constant_value, degenerate
from semret.evaluation.results_table import (
    RESULTS_CSV,
    method_timing,
    metric_grid,
    results_frame,
    write_results_csv,
)
from semret.evaluation.runs import MISSING_RULES, EvalResult

RESULTS_FILE = "results.json"
RANKINGS_FILE = "rankings.npz"
#: The models a run leaves in its report directory for later queries (`semret serve --report`).
HASH_MODEL_FILE, CIMON_MODEL_FILE, IWAN_CLASSIFIER_FILE = "hash-model.pt", "cimon-model.pt", "iwan-classifier.pt"
PLOT_FILES = {"mAP": "map_at_k.png", "mAHP": "mahp_at_k.png", "time": "query_time.png"}
#: The packages whose versions a result depends on.
PACKAGES = ("numpy", "scipy", "pandas", "torch", "torchvision", "faiss-cpu", "networkx", "sqlalchemy", "psycopg")


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
    """A method's build time and query times (mean, median, 99th percentile; ms), over every seed."""
    return method_timing(result, method)


def conventions_document(result: EvalResult) -> dict[str, Any]:
    """What each convention of the run means: where it comes from and each metric's definition."""
    return {
        name: {"source": CONVENTIONS[name].source, "metrics": dict(CONVENTIONS[name].metrics)}
        for name in result.config.conventions
    }


def results_document(result: EvalResult) -> dict[str, Any]:
    """Everything of a run as plain JSON-able data (a database password is not written).

    Per method: ``metrics`` in the first (default) convention and ``conventions`` in each, the mean
    over the seeds; with several seeds also ``std`` (per convention) and ``seeds`` (every seed's
    scores); ``details`` (parameters, model, graph size) are the first seed's run."""
    config = asdict(result.config)
    frame = results_frame(result)
    methods: dict[str, Any] = {}
    for method in result.methods:
        rows = frame[frame["method"] == method]
        means: dict[str, dict[str, dict[str, float]]] = {}
        spreads: dict[str, dict[str, dict[str, float]]] = {}
        for convention, metric, k, value, std in zip(
            rows["convention"], rows["metric"], rows["k"], rows["value"], rows["std"], strict=True
        ):
            means.setdefault(convention, {}).setdefault(metric, {})[str(k)] = float(value)
            spreads.setdefault(convention, {}).setdefault(metric, {})[str(k)] = float(std)
        entry: dict[str, Any] = {
            "metrics": means[result.config.conventions[0]],
            "conventions": means,
            "timing": timing(result, method),
            "details": result.runs[method].details,
        }
        if len(result.seeds) > 1:
            entry["std"] = spreads
            entry["seeds"] = {
                str(seed): {
                    convention: {
                        metric: {str(k): v for k, v in values.items()}
                        for metric, values in scores[convention][method].items()
                    }
                    for convention in result.config.conventions
                }
                for seed, scores in result.seed_scores.items()
            }
        methods[method] = entry
    return {
        "semret_results": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        # the summary holds the URL as the run described it, password hidden
        "config": {**config, "database_url": config["database_url"] and result.summary["database_url"]},
        "versions": versions(),
        "summary": {**result.summary, "collection": result.collection},
        "conventions": conventions_document(result),
        "missing_results": MISSING_RULES[result.config.missing],
        "methods": methods,
    }


def write_results(result: EvalResult, out: Path) -> dict[str, Path]:
    """Write results.json, results.csv, rankings.npz and the plots into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / RESULTS_FILE
    results.write_text(json.dumps(results_document(result), indent=2, default=json_default) + "\n", encoding="utf-8")
    table = write_results_csv(result, out / RESULTS_CSV)
    rankings = out / RANKINGS_FILE
    arrays = {"query_ids": result.query_ids, "database_ids": result.database_ids}
    first = result.seeds[0]
    for seed, runs in result.seed_runs.items():
        suffix = "" if seed == first else f"_seed{seed}"
        for method, run in runs.items():
            if seed != first and run is result.runs[method]:
                continue  # a method run once for every seed
            arrays[f"ids_{method}{suffix}"] = run.ids
            if run.ids_with_query is not None:
                arrays[f"ids_with_query_{method}{suffix}"] = run.ids_with_query
    np.savez_compressed(rankings, **arrays)  # type: ignore[arg-type]
    written = {"results": results, "table": table, "rankings": rankings}
    written.update(write_plots(result, out))
    return written


def json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays, and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _title(result: EvalResult, metric: str, convention: str) -> str:
    seeds = f", {len(result.seeds)} seeds (mean ± std)" if len(result.seeds) > 1 else ""
    return f"{metric}@k ({convention}) — {result.summary['dataset']}, {result.summary['backbone']['name']}{seeds}"


def metric_table(result: EvalResult, metric: str, convention: str | None = None) -> Table:
    """One convention's metric: a row per method, a column per k (the best mean of each column in
    bold); a cell with a note (`degenerate`) has it under the table, and one that is the same for
    every ranking (mAHP@1 by the trapezoid) is printed "-"."""
    name = convention or result.config.conventions[0]
    frame = results_frame(result)
    grid = metric_grid(frame, name, metric)
    rows = frame[(frame["convention"] == name) & (frame["metric"] == metric)]
    best = rows.groupby("k")["value"].max()
    in_database = result.config.protocol == "test"
    notes = {
        k: note for k in grid.columns if (note := degenerate(name, metric, int(k), queries_in_database=in_database))
    }
    blank = {k for k in notes if constant_value(name, metric, int(k)) is not None}
    caption = "; ".join(f"@{k}: {note}" for k, note in notes.items()) or None
    table = Table(title=_title(result, metric, name), caption=caption)
    table.add_column("method")
    for k in grid.columns:
        table.add_column(f"@{k}", justify="right")
    for method in grid.index:
        cells = []
        for k in grid.columns:
            mean = float(rows[(rows["method"] == method) & (rows["k"] == k)]["value"].iloc[0])
            cell = "-" if k in blank else str(grid.loc[method, k])
            cells.append(f"[bold]{cell}[/bold]" if k not in blank and mean == best[k] else cell)
        table.add_row(method, *cells)
    return table


def timing_table(result: EvalResult) -> Table:
    """Build and query times per method (the mean over the seeds)."""
    seeds = f", mean of {len(result.seeds)} seeds" if len(result.seeds) > 1 else ""
    table = Table(
        title=f"time — {result.summary['queries']:,} queries, {result.summary['database_images']:,} images{seeds}"
    )
    for column in ("method", "build s", "query ms (mean)", "p50", "p99"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method in result.methods:
        times = timing(result, method)
        table.add_row(
            method,
            f"{times['build_seconds']:.2f}",
            f"{times['query_ms_mean']:.3f}",
            f"{times['query_ms_p50']:.3f}",
            f"{times['query_ms_p99']:.3f}",
        )
    return table


def tables(result: EvalResult, metrics: tuple[str, ...] | None = None) -> list[Table]:
    """A table per convention and metric (the convention's own metrics, or those of ``metrics`` it
    gives), then the timing table."""
    out = []
    frame = results_frame(result)
    for convention in result.config.conventions:
        scored = set(frame[frame["convention"] == convention]["metric"])
        for metric in metrics or tuple(CONVENTIONS[convention].metrics):
            if metric in scored:
                out.append(metric_table(result, metric, convention))
    return [*out, timing_table(result)]


def write_plots(result: EvalResult, out: Path) -> dict[str, Path]:
    """mAP@k and mAHP@k against k (a line per method; a k where the metric is the same for every
    ranking, mAHP@1, has no point), and the mean query time per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(result.config.ks)
    title = f"{result.summary['dataset']}, {result.summary['backbone']['name']}, {result.summary['queries']:,} queries"
    written: dict[str, Path] = {}
    convention = result.config.conventions[0]
    frame = results_frame(result)
    for metric in ("mAP", "mAHP"):
        if metric not in CONVENTIONS[convention].metrics:
            continue
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for method in result.methods:
            rows = frame[
                (frame["method"] == method) & (frame["convention"] == convention) & (frame["metric"] == metric)
            ]
            rows = rows.sort_values("k")
            # a point that is the same for every ranking (mAHP@1) is left out, as the tables print "-"
            kept = np.array([constant_value(convention, metric, int(k)) is None for k in rows["k"]], dtype=bool)
            rows = rows[kept]
            spread = rows["std"].fillna(0.0) if len(result.seeds) > 1 else None
            axes.errorbar(rows["k"], rows["value"], yerr=spread, marker="o", capsize=3, label=method)
        axes.set_xscale("log")
        axes.set_xticks(ks, [str(k) for k in ks])
        axes.set_xlabel("k")
        axes.set_ylabel(f"{metric}@k ({convention})")
        axes.set_title(title, fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = out / PLOT_FILES[metric]
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written[metric] = path
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    methods = result.methods
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
