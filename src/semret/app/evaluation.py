"""Evaluate: run every retrieval method on a dataset and score it, and the demo on the sample that
ships with semret. The report (results.json, rankings.npz, plots, contact sheets of each method's
best and worst queries) and the models go to one
directory; `Evaluation.files` lists everything written there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from semret.errors import SemretError

if TYPE_CHECKING:  # torch is slow to import: the pipeline is imported where it runs
    from semret.evaluation.runs import EvalConfig, EvalResult
    from semret.evaluation.sweep import SweepResult
    from semret.sql.norms_store import NormsLoadReport

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Evaluation:
    """A finished evaluation (or parameter sweep) and the absolute paths of every file it wrote into ``out``."""

    result: EvalResult | SweepResult
    out: Path
    files: list[Path]


def evaluate(
    config: EvalConfig, out: str | Path, progress: Progress | None = None, log: Log | None = None
) -> Evaluation:
    """Run the evaluation `config` describes (`semret.app.eval_pipeline.run_evaluation`, or
    `semret.app.eval_sweep.run_sweep` for a sweep) and write its report into ``out``."""
    from semret.app.eval_pipeline import run_evaluation
    from semret.app.eval_sweep import run_sweep
    from semret.app.sheets import write_report_sheets
    from semret.evaluation.report import write_results
    from semret.evaluation.sweep import write_sweep
    from semret.sql.engine import make_engine

    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: EvalResult | SweepResult
    if config.sweep is not None:
        result = run_sweep(config, folder, progress, log)
        written = set(write_sweep(result, folder).values())
    else:
        result = run_evaluation(config, folder, progress, log)
        written = set(write_results(result, folder).values())
        # contact sheets of each method's best and worst queries, the pixels from the store; the
        # results are written already: a sheet that cannot be drawn is said, not fatal
        engine = make_engine(config.database_url)
        try:
            written |= set(write_report_sheets(result, folder, engine).values())
        except SemretError as exc:
            (log or logging.getLogger("semret").warning)(f"contact sheets left out: {exc}")
        finally:
            engine.dispose()
    # the report, and what the methods left there (the hash model): every file this run wrote
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (p in written or p.stat().st_mtime >= started - 1))
    return Evaluation(result, folder, files)


def prepare_demo(database_url: str | None = None) -> NormsLoadReport | None:
    """Bring the database's schema up to date and load the norms sample, unless norms are loaded
    already (then None)."""
    from semret.app.demo import prepare_database

    return prepare_database(database_url)


def demo(
    out: str | Path = "semret-demo",
    database_url: str | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Evaluation:
    """The whole pipeline, offline, on the sample shipped with semret (`prepare_demo` first)."""
    from semret.app.demo import demo_config

    return evaluate(demo_config(database_url, str(cache_dir) if cache_dir else None), out, progress, log)
