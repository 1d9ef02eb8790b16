"""An evaluation's scores as one tidy table (pandas): a row per method, convention, metric and k,
with the mean over the seeds, their standard deviation, the number of seeds and the method's
timings. It is what ``results.csv`` holds, what the printed and Markdown tables are rendered from,
and what `load_results` reads back, one run or several, into one DataFrame::

    import semret.evaluation as ev
    frame = ev.load_results("semret-eval/fashion-mnist-efficientnet-lite0", "other-run")
    frame.query("metric == 'mAP' and k == 250").pivot(index="method", columns="run", values="value")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from semret.errors import SemretError
from semret.evaluation.runs import EvalResult, MethodRun

RESULTS_CSV = "results.csv"
#: The columns of results.csv, in order.
COLUMNS = (
    "method",
    "convention",
    "metric",
    "k",
    "value",
    "std",
    "seeds",
    "build_seconds",
    "query_ms_mean",
    "query_ms_p50",
    "query_ms_p99",
)
TIMING_COLUMNS = COLUMNS[-4:]


def run_timing(runs: Sequence[MethodRun]) -> dict[str, float]:
    """A method's build time and query times (mean, median, 99th percentile; ms), each the mean
    over the runs (seeds) given."""
    return {
        "build_seconds": float(np.mean([run.build_seconds for run in runs])),
        "query_ms_mean": float(np.mean([1000 * run.query_seconds.mean() for run in runs])),
        "query_ms_p50": float(np.mean([1000 * np.percentile(run.query_seconds, 50) for run in runs])),
        "query_ms_p99": float(np.mean([1000 * np.percentile(run.query_seconds, 99) for run in runs])),
    }


def method_timing(result: EvalResult, method: str) -> dict[str, float]:
    """A method's timings over every seed of the run."""
    return run_timing([runs[method] for runs in result.seed_runs.values()])


def seed_frame(result: EvalResult) -> pd.DataFrame:
    """Every score of every seed: columns seed, method, convention, metric, k, value."""
    rows = [
        (seed, method, convention, metric, k, value)
        for seed, scores in result.seed_scores.items()
        for convention, methods in scores.items()
        for method, metrics in methods.items()
        for metric, values in metrics.items()
        for k, value in values.items()
    ]
    return pd.DataFrame(rows, columns=["seed", "method", "convention", "metric", "k", "value"])


def results_frame(result: EvalResult) -> pd.DataFrame:
    """The tidy table of results.csv: mean and standard deviation (ddof 1; empty for one seed) over
    the seeds, and each method's timings, in the run's order of methods, conventions and metrics."""
    scores = seed_frame(result)
    grouped = scores.groupby(["method", "convention", "metric", "k"], sort=False)["value"]
    frame = grouped.agg(value="mean", std="std", seeds="count").reset_index()
    timings = pd.DataFrame([{"method": m, **method_timing(result, m)} for m in result.methods])
    frame = frame.merge(timings, on="method", how="left")
    return frame.loc[:, list(COLUMNS)]


def write_results_csv(result: EvalResult, path: Path) -> Path:
    """results.csv (float values written in full, so a reader gets every digit back)."""
    results_frame(result).to_csv(path, index=False, float_format="%.10g")
    return path


def load_results(*paths: str | Path) -> pd.DataFrame:
    """One DataFrame of one or more runs' results.csv (a run's folder or the file itself), with a
    ``run`` column naming each: its folder's name, or its folder's path where two names are alike."""
    if not paths:
        raise SemretError("load_results needs at least one run folder or results.csv")
    frames = []
    files = [Path(given) / RESULTS_CSV if Path(given).is_dir() else Path(given) for given in paths]
    names = [file.parent.name for file in files]
    if len(set(names)) < len(names):  # two runs in folders of one name: their paths tell them apart
        names = [str(file.parent) for file in files]
    for file, name in zip(files, names, strict=True):
        if not file.is_file():
            raise SemretError(f"{file}: no such results file (a run folder holds {RESULTS_CSV})")
        try:
            frame = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SemretError(f"{file}: not a results table ({exc})") from None
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise SemretError(f"{file}: not a semret results table (missing column(s) {', '.join(missing)})")
        frame.insert(0, "run", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def format_value(value: float, std: float, seeds: int) -> str:
    """0.8338, or 0.8338 ± 0.0030 over several seeds."""
    if seeds > 1 and np.isfinite(std):
        return f"{value:.4f} ± {std:.4f}"
    return f"{value:.4f}"


def metric_grid(frame: pd.DataFrame, convention: str, metric: str) -> pd.DataFrame:
    """One convention's metric as methods x k of formatted cells (the run's method order)."""
    rows = frame[(frame["convention"] == convention) & (frame["metric"] == metric)]
    if rows.empty:
        raise SemretError(f"no {metric} scores in convention {convention!r}")
    cells = rows.assign(
        cell=[format_value(v, s, n) for v, s, n in zip(rows["value"], rows["std"], rows["seeds"], strict=True)]
    )
    grid = cells.pivot(index="method", columns="k", values="cell")
    order = list(dict.fromkeys(rows["method"]))
    return grid.loc[order, sorted(grid.columns)]


def markdown_grid(frame: pd.DataFrame, convention: str, metric: str) -> str:
    """A convention's metric as a Markdown table (methods x k), for docs."""
    grid = metric_grid(frame, convention, metric)
    grid.columns = [f"@{k}" for k in grid.columns]
    return str(grid.to_markdown(colalign=["left"] + ["right"] * len(grid.columns)))
