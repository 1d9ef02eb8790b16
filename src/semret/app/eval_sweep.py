"""`semret eval --sweep`: one method run for each value of one of its parameters, on data prepared
once (features, database, queries), each run scored in every convention (seed 002's IWAN
experiment: top-IWK = 1..10). The report is `semret.evaluation.sweep`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from semret.app.eval_methods import RUNNERS, Progress, check_method_params
from semret.app.eval_pipeline import check_run, prepare_run, run_summary, score_run
from semret.errors import SemretError
from semret.evaluation.runs import EvalConfig, MethodRun
from semret.evaluation.sweep import SweepResult

Log = Callable[[str], None]


Params = dict[str, dict[str, Any]]


def _with_value(params: Params, method: str, parameter: str, value: Any) -> Params:
    return {**params, method: {**params.get(method, {}), parameter: value}}


def run_sweep(
    config: EvalConfig, work_dir: Path, progress: Progress | None = None, log: Log | None = None
) -> SweepResult:
    """Run ``config.methods[0]`` once per value of ``config.sweep`` (every value checked first)."""
    say = log or (lambda _message: None)
    if config.sweep is None:
        raise SemretError("run_sweep needs a configuration with a sweep (parameter, values)")
    config.check()
    parameter, values = config.sweep
    method = config.methods[0]
    for value in values:
        check_method_params((method,), _with_value(config.params, method, parameter, value))
    check_run(config)
    prepared = prepare_run(config, config.seed, work_dir, progress, say)
    runs: dict[Any, MethodRun] = {}
    scores: dict[Any, dict[str, dict[str, dict[int, float]]]] = {}
    try:
        for value in values:
            prepared.data.params = _with_value(config.params, method, parameter, value)
            # RUNNERS directly, not iter_runs: what the runs share (iwan-published's stored
            # ImageNet words) stays for the next value, and is let go after the last
            run = RUNNERS[method](prepared.data, max(config.ks), progress)
            runs[value], scores[value] = run, score_run(config, prepared.ground, run)
            say(f"{method} {parameter}={value}: " + run_summary(scores[value][config.conventions[0]], config.ks, run))
    finally:
        prepared.data.shared.clear()
    summary = {**prepared.summary, "collection": prepared.collection}
    return SweepResult(config, method, parameter, summary, runs, scores)
