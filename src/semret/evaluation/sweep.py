"""A parameter sweep: one method run for each value of one of its parameters on the same data, its
scores and query time against the value. Seed 002's IWAN experiment is such a sweep (mAP@k, mAHP@k
and retrieval time against top-IWK = 1..10, its figures 1-4); `semret eval --sweep` runs one and
`write_sweep` leaves sweep.json, sweep.csv and the four plots behind.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semret.errors import SemretError
from semret.evaluation.conventions import CONVENTIONS
from semret.evaluation.report import json_default
from semret.evaluation.results_table import run_timing
from semret.evaluation.runs import EvalConfig, MethodRun

SWEEP_FILE = "sweep.json"
SWEEP_CSV = "sweep.csv"
#: The plots of the first convention (the others' end in the convention's name).
SWEEP_PLOTS = {
    "mAP": "sweep_map.png",
    "mAHP": "sweep_mahp.png",
    "compare": "sweep_map_vs_mahp.png",
    "time": "sweep_query_time.png",
}


@dataclass
class SweepResult:
    """Each value's run and its scores (convention -> metric -> k -> mean)."""

    config: EvalConfig
    method: str
    parameter: str
    summary: dict[str, Any]
    runs: dict[Any, MethodRun]
    scores: dict[Any, dict[str, dict[str, dict[int, float]]]]


def sweep_frame(result: SweepResult) -> pd.DataFrame:
    """The tidy table of sweep.csv: a row per value, convention, metric and k, with the run's timings."""
    rows = []
    for value, conventions in result.scores.items():
        times = run_timing([result.runs[value]])
        for convention, metrics in conventions.items():
            for metric, values in metrics.items():
                for k, score in values.items():
                    rows.append(
                        {
                            "method": result.method,
                            "parameter": result.parameter,
                            "value": value,
                            "convention": convention,
                            "metric": metric,
                            "k": k,
                            "score": score,
                            **times,
                        }
                    )
    return pd.DataFrame(rows)


def write_sweep(result: SweepResult, out: Path) -> dict[str, Path]:
    """sweep.json (every number, the configuration), sweep.csv and the plots; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "semret_sweep": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {**asdict(result.config), "database_url": result.summary["database_url"]},
        "summary": result.summary,
        "method": result.method,
        "parameter": result.parameter,
        "conventions": {
            name: {"source": CONVENTIONS[name].source, "metrics": dict(CONVENTIONS[name].metrics)}
            for name in result.config.conventions
        },
        "values": [
            {
                "value": value,
                "scores": {
                    convention: {metric: {str(k): v for k, v in values.items()} for metric, values in metrics.items()}
                    for convention, metrics in result.scores[value].items()
                },
                "timing": run_timing([result.runs[value]]),
                "details": result.runs[value].details,
            }
            for value in result.runs
        ],
    }
    path = out / SWEEP_FILE
    path.write_text(json.dumps(document, indent=2, default=json_default) + "\n", encoding="utf-8")
    table = out / SWEEP_CSV
    sweep_frame(result).to_csv(table, index=False, float_format="%.10g")
    return {"sweep": path, "table": table, **write_sweep_plots(result, out)}


def compare_k(ks: tuple[int, ...]) -> int:
    """The k at which mAP and mAHP are compared: 20 as in seed 002's figure 3, else the largest k below it."""
    below = [k for k in ks if k <= 20]
    return max(below) if below else min(ks)


def write_sweep_plots(result: SweepResult, out: Path) -> dict[str, Path]:
    """The sweep's plots (`draw_sweep_plots`) from its result."""
    return draw_sweep_plots(sweep_frame(result), _plot_facts(result), out)


def redraw_sweep(folder: str | Path) -> dict[str, Path]:
    """Draw a finished sweep's plots again from its sweep.csv and sweep.json (e.g. after an upgrade)."""
    folder = Path(folder)
    try:
        document = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        frame = pd.read_csv(folder / SWEEP_CSV)
        facts = {
            "method": document["method"],
            "parameter": document["parameter"],
            "dataset": document["summary"]["dataset"],
            "queries": document["summary"]["queries"],
            "ks": tuple(document["config"]["ks"]),
            "conventions": tuple(document["config"]["conventions"]),
            "values": [entry["value"] for entry in document["values"]],
        }
    except (OSError, ValueError, KeyError) as exc:
        raise SemretError(f"{folder}: not a finished sweep ({type(exc).__name__}: {exc})") from None
    return draw_sweep_plots(frame, facts, folder)


def _plot_facts(result: SweepResult) -> dict[str, Any]:
    return {
        "method": result.method,
        "parameter": result.parameter,
        "dataset": result.summary["dataset"],
        "queries": result.summary["queries"],
        "ks": result.config.ks,
        "conventions": result.config.conventions,
        "values": list(result.runs),
    }


def plot_name(key: str, convention: str, first: bool) -> str:
    """The plot's file: the first convention's as `SWEEP_PLOTS` names it, others suffixed."""
    name = SWEEP_PLOTS[key]
    return name if first else name.replace(".png", f"_{convention}.png")


def draw_sweep_plots(frame: pd.DataFrame, facts: dict[str, Any], out: Path) -> dict[str, Path]:
    """Seed 002's figures 1-4 for any sweep, in each convention (the first convention's files are
    `SWEEP_PLOTS`, the others' end in the convention's name): mAP@k and mAHP@k against the value
    (a line per k), mAP and mAHP at one k side by side, and (once) the mean query time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = list(facts["values"])
    positions = np.arange(len(values)) if not _numeric(values) else np.asarray(values, dtype=float)
    labels = [str(v) for v in values]
    written: dict[str, Path] = {}

    def finish(figure: Any, axes: Any, key: str, ylabel: str, title: str) -> None:
        axes.set_xticks(positions, labels)
        axes.set_xlabel(facts["parameter"])
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=9)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written[key] = out / key
        figure.savefig(written[key], dpi=120)
        plt.close(figure)

    def at(rows: pd.DataFrame, column: str) -> Any:
        return rows.drop_duplicates("value").set_index("value").loc[values][column]

    for number, convention in enumerate(facts["conventions"]):
        rows = frame[frame["convention"] == convention]
        title = (
            f"{facts['method']}: {facts['parameter']} — {facts['dataset']}, {facts['queries']:,} queries ({convention})"
        )
        for metric in ("mAP", "mAHP"):
            chosen = rows[rows["metric"] == metric]
            if chosen.empty:
                continue
            figure, axes = plt.subplots(figsize=(6.4, 4.2))
            for k in sorted(set(chosen["k"])):
                axes.plot(positions, at(chosen[chosen["k"] == k], "score"), marker="o", label=f"{metric}@{k}")
            finish(figure, axes, plot_name(metric, convention, number == 0), f"{metric}@k", title)
        k = compare_k(tuple(facts["ks"]))
        compared = rows[(rows["k"] == k) & rows["metric"].isin(["mAP", "mAHP"])]
        if not compared.empty:
            figure, axes = plt.subplots(figsize=(6.4, 4.2))
            for metric in ("mAP", "mAHP"):
                chosen = compared[compared["metric"] == metric]
                if not chosen.empty:
                    axes.plot(positions, at(chosen, "score"), marker="o", label=f"{metric}@{k}")
            finish(figure, axes, plot_name("compare", convention, number == 0), f"score @{k}", title)
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    axes.plot(positions, at(frame, "query_ms_mean"), marker="o", label="mean query time")
    title = f"{facts['method']}: {facts['parameter']} — {facts['dataset']}, {facts['queries']:,} queries"
    finish(figure, axes, SWEEP_PLOTS["time"], "ms a query", title)
    return written


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def sweep_tables(result: SweepResult) -> list[Any]:
    """Per convention, a table of value x metric@k (rich), and the timings."""
    from rich.table import Table

    ks = sorted(result.config.ks)
    tables = []
    for convention in result.config.conventions:
        metrics = list(CONVENTIONS[convention].metrics)
        table = Table(title=f"{result.method} against {result.parameter} ({convention}) — {result.summary['dataset']}")
        table.add_column(result.parameter)
        for metric in metrics:
            for k in ks:
                table.add_column(f"{metric}@{k}", justify="right")
        table.add_column("query ms", justify="right")
        for value, scores in result.scores.items():
            cells = [f"{scores[convention][metric][k]:.4f}" for metric in metrics for k in ks]
            table.add_row(str(value), *cells, f"{run_timing([result.runs[value]])['query_ms_mean']:.3f}")
        tables.append(table)
    return tables
