"""The evaluation's tidy results (results.csv, `load_results`), several seeds aggregated, several
conventions reported, the rankings with the query kept, and parameter sweeps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from test_evaluation import tiny_config, write_patterned_fashion

from semret.app.demo import prepare_database
from semret.app.eval_methods import EvalData, _timed_queries
from semret.app.eval_pipeline import run_evaluation
from semret.app.eval_sweep import run_sweep
from semret.errors import SemretError
from semret.evaluation import load_results
from semret.evaluation.report import results_document, tables, write_plots, write_results
from semret.evaluation.results_table import COLUMNS, RESULTS_CSV, results_frame
from semret.evaluation.runs import EvalConfig, EvalResult, MethodRun
from semret.evaluation.sweep import SWEEP_CSV, SWEEP_FILE, SWEEP_PLOTS, redraw_sweep, write_sweep
from semret.hashing.retrieval import HashQueries, SemanticHashIndex
from semret.indexes.exact import ExactIndex

from helpers import semret


def _run(ids: list[list[int]], build: float, seconds: list[float]) -> MethodRun:
    return MethodRun(np.array(ids, dtype=np.int64), build, np.array(seconds), {"spec": "x"})


def two_seed_result() -> EvalResult:
    """Two methods, two seeds, two conventions, with scores chosen by hand."""
    config = EvalConfig(dataset="toy", ks=(1, 2), seeds=(0, 1), conventions=("semret", "hashnet"), methods=("a", "b"))
    runs = {
        0: {"a": _run([[1, 2]], 1.0, [0.001, 0.003]), "b": _run([[2, 1]], 3.0, [0.002])},
        1: {"a": _run([[1, 2]], 2.0, [0.002, 0.004]), "b": _run([[2, 1]], 5.0, [0.004])},
    }

    def scores(a: float, b: float) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
        return {
            "semret": {"a": {"mAP": {1: a, 2: a / 2}}, "b": {"mAP": {1: b, 2: b / 2}}},
            "hashnet": {"a": {"mAP": {1: a, 2: a}}, "b": {"mAP": {1: b, 2: b}}},
        }

    summary = {
        "dataset": "toy",
        "backbone": {"name": "none"},
        "queries": 1,
        "database_images": 2,
        "database_url": None,
    }
    return EvalResult(
        config, "c", summary, np.array([1, 2]), np.array([0]), runs, {0: scores(0.5, 0.2), 1: scores(0.7, 0.2)}
    )


def test_the_tidy_table_is_mean_and_std_over_seeds_with_timings() -> None:
    frame = results_frame(two_seed_result())
    assert list(frame.columns) == list(COLUMNS)
    row = frame[(frame.method == "a") & (frame.convention == "semret") & (frame.k == 1)].iloc[0]
    assert row.value == pytest.approx(0.6)
    assert row["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert row.seeds == 2
    assert row.build_seconds == pytest.approx(1.5)
    assert row.query_ms_mean == pytest.approx((2.0 + 3.0) / 2)  # seed 0: 2 ms, seed 1: 3 ms
    same = frame[(frame.method == "b") & (frame.convention == "hashnet") & (frame.k == 2)].iloc[0]
    assert (same.value, same["std"]) == (pytest.approx(0.2), pytest.approx(0.0))
    assert two_seed_result().scores["a"]["mAP"][2] == pytest.approx(0.3)  # first convention, mean of seeds


def test_results_csv_loads_back_for_one_run_or_several(tmp_path: Path) -> None:
    result = two_seed_result()
    for name in ("run-one", "run-two"):
        write_results(result, tmp_path / name)
    frame = load_results(tmp_path / "run-one", tmp_path / "run-two" / RESULTS_CSV)
    assert list(frame.columns) == ["run", *COLUMNS]
    assert sorted(set(frame.run)) == ["run-one", "run-two"]
    pd.testing.assert_frame_equal(
        frame[frame.run == "run-one"].drop(columns="run").reset_index(drop=True),
        results_frame(result),
        check_dtype=False,
    )


def test_redrawing_needs_a_finished_sweep(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match="not a finished sweep"):
        redraw_sweep(tmp_path)


def test_load_results_names_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match="no such results file"):
        load_results(tmp_path)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SemretError, match=r"other.csv: not a semret results table \(missing column"):
        load_results(tmp_path / "other.csv")
    with pytest.raises(SemretError, match="at least one"):
        load_results()


def test_results_json_records_each_convention_and_every_seed() -> None:
    document = results_document(two_seed_result())
    assert set(document["conventions"]) == {"semret", "hashnet"}
    assert document["conventions"]["hashnet"]["metrics"]["mAP"]
    method = document["methods"]["a"]
    assert method["metrics"]["mAP"]["1"] == pytest.approx(0.6)
    assert method["conventions"]["hashnet"]["mAP"]["2"] == pytest.approx(0.6)
    assert method["std"]["semret"]["mAP"]["1"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert method["seeds"]["1"]["semret"]["mAP"]["1"] == 0.7


def test_tables_show_mean_and_std_per_convention() -> None:
    console = Console(record=True, width=200)
    for table in tables(two_seed_result()):
        console.print(table)
    text = console.export_text()
    assert "mAP@k (semret)" in text and "mAP@k (hashnet)" in text
    assert "0.6000 ± 0.1414" in text
    assert "2 seeds (mean ±" in text


def _data(features: np.ndarray, keep_query: bool) -> EvalData:
    ids = np.arange(10, 10 + len(features), dtype=np.int64)
    return EvalData(
        engine=None,  # type: ignore[arg-type]
        collection="c",
        class_names=["x"],
        hierarchy=None,  # type: ignore[arg-type]
        aliases={},
        train_features=features,
        train_labels=np.zeros(len(features), dtype=np.int64),
        database_ids=ids,
        database_features=features,
        database_labels=np.zeros(len(features), dtype=np.int64),
        query_ids=ids,
        query_features=features,
        query_labels=np.zeros(len(features), dtype=np.int64),
        queries_in_database=True,
        work_dir=Path("."),
        keep_query=keep_query,
    )


@pytest.mark.parametrize("shortlist", [None, 5, 7])
def test_keeping_the_query_leaves_the_ranking_without_it_as_it_is(shortlist: int | None) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, 8)).astype(np.float32)
    codes = np.packbits(rng.integers(0, 2, (40, 16)).astype(np.uint8), axis=1)
    exact = ExactIndex(8)
    exact.add(np.arange(10, 50), features)
    hashed = SemanticHashIndex(16, 8, "rerank", shortlist=shortlist)
    hashed.add(np.arange(10, 50), features, codes)
    plain, kept = _data(features, keep_query=False), _data(features, keep_query=True)
    for index, query in (
        (exact, lambda row: features[row : row + 1]),
        (hashed, lambda row: HashQueries(features[row : row + 1], codes[row : row + 1])),
    ):
        without = _timed_queries(plain, index, query, 5, "x", None)
        both = _timed_queries(kept, index, query, 5, "x", None)
        assert without.ids_with_query is None
        np.testing.assert_array_equal(both.ids, without.ids)  # seed-002 asked or not: the same
        assert both.ids_with_query is not None
        for row in range(40):
            _, expected = index.search(query(row), 5)
            np.testing.assert_array_equal(both.ids_with_query[row], expected[0])
    np.testing.assert_array_equal(both.ids_with_query[:, 0], plain.query_ids)  # re-rank: itself first


def test_several_seeds_run_separately_and_the_first_is_a_single_seed_run(sqlite_url: str, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    data = write_patterned_fashion(tmp_path / "fashion")
    config = tiny_config(data, sqlite_url, tmp_path / "cache", methods=("exact", "lsh"), backbone_epochs=1)
    many = run_evaluation(replace(config, seeds=(0, 1)), tmp_path / "many")
    single = run_evaluation(config, tmp_path / "single")
    assert many.seeds == [0, 1]
    for method in ("exact", "lsh"):
        np.testing.assert_array_equal(many.seed_runs[0][method].ids, single.runs[method].ids)
    frame = results_frame(many)
    assert set(frame.seeds) == {2}
    # small-cnn is trained per seed, so even exact search differs between the seeds
    assert not np.array_equal(many.seed_runs[0]["exact"].ids, many.seed_runs[1]["exact"].ids)


def test_a_pretrained_backbone_runs_a_method_that_draws_nothing_once(sqlite_url: str, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    data = write_patterned_fashion(tmp_path / "fashion")
    config = tiny_config(
        data,
        sqlite_url,
        tmp_path / "cache",
        backbone="efficientnet-lite0",
        image_size=32,
        methods=("exact", "lsh"),
        seeds=(0, 1),
        conventions=("semret", "seed-002"),
    )
    result = run_evaluation(config, tmp_path / "work")
    assert result.seed_runs[1]["exact"] is result.seed_runs[0]["exact"]
    assert result.seed_runs[1]["lsh"] is not result.seed_runs[0]["lsh"]
    exact = result.runs["exact"]
    assert exact.ids_with_query is not None  # seed-002 counts the query
    assert result.seed_scores[0]["seed-002"]["exact"]["mAP"][1] == 1.0  # the query finds itself first
    frame = results_frame(result)
    row = frame[(frame.method == "exact") & (frame.convention == "semret") & (frame.k == 10) & (frame.metric == "mAP")]
    assert float(row["std"].iloc[0]) == 0.0


def test_a_sweep_runs_one_method_per_value(sqlite_url: str, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    data = write_patterned_fashion(tmp_path / "fashion")
    config = tiny_config(data, sqlite_url, tmp_path / "cache", methods=("lsh",), sweep=("n_bits", (2, 4, 6)))
    result = run_sweep(config, tmp_path / "work")
    assert list(result.runs) == [2, 4, 6]
    assert [result.runs[v].details["params"]["n_bits"] for v in (2, 4, 6)] == [2, 4, 6]
    written = write_sweep(result, tmp_path / "out")
    for name in (SWEEP_FILE, SWEEP_CSV, *SWEEP_PLOTS.values()):
        assert (tmp_path / "out" / name).is_file(), name
    assert set(written.values()) == {tmp_path / "out" / n for n in (SWEEP_FILE, SWEEP_CSV, *SWEEP_PLOTS.values())}
    table = pd.read_csv(tmp_path / "out" / SWEEP_CSV)
    assert sorted(set(table.value)) == [2, 4, 6]
    document = json.loads((tmp_path / "out" / SWEEP_FILE).read_text())
    assert [v["value"] for v in document["values"]] == [2, 4, 6]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "1", "--seeds", "0,1"], "give --seed or --seeds, not both"),
        (["--seeds", "0,x"], "--seeds must be integers"),
        (["--seeds", "1,1"], "a seed is given twice"),
        (["--convention", "nope"], "unknown convention(s) nope: choose from semret"),
        (["--missing", "skip"], "unknown missing-results rule 'skip'"),
        (["--sweep", "top_iwk"], "--sweep takes PARAMETER=V1,V2,..."),
        (["--methods", "exact,lsh", "--sweep", "n_bits=2,4"], "a sweep varies one method's parameter"),
        (["--methods", "lsh", "--sweep", "n_bitz=2,4"], "no parameter n_bitz"),
        (["--methods", "lsh", "--sweep", "n_bits=2,4", "--seeds", "0,1"], "a sweep runs with one seed"),
    ],
)
def test_eval_options_are_checked_before_any_work(sqlite_url: str, args: list[str], message: str) -> None:
    result = semret("--db", sqlite_url, "eval", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent", *args)
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split()), result.output


def test_a_cell_that_is_the_same_for_every_ranking_is_printed_as_a_dash() -> None:
    result = two_seed_result()
    for seed in result.seed_scores.values():
        for method in ("a", "b"):
            seed["semret"][method]["mAHP"] = {1: 0.0, 2: 0.25}
    console = Console(record=True, width=200)
    for table in tables(result, ("mAHP",)):
        console.print(table)
    text = console.export_text()
    assert "0 by definition" in " ".join(text.split())
    cells = [cell.strip() for cell in next(r for r in text.splitlines() if r.startswith("│ a ")).split("│")]
    assert cells[1:4] == ["a", "-", "0.2500 ± 0.0000"], cells


def test_iwan_published_runs_in_the_pipeline_and_sweeps_top_iwk(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semret.app.iwan_published as published

    stored: list[int] = []
    store = published.store_imagenet_words
    monkeypatch.setattr(
        published,
        "store_imagenet_words",
        lambda engine, collection, ranked: stored.append(1) or store(engine, collection, ranked),
    )
    prepare_database(sqlite_url)
    data = write_patterned_fashion(tmp_path / "fashion")
    config = tiny_config(
        data,
        sqlite_url,
        tmp_path / "cache",
        backbone="efficientnet-lite0",
        image_size=32,
        methods=("iwan-published",),
        protocol="train-test",
        conventions=("seed-002-iwan", "semret"),
        sweep=("top_iwk", (1, 4)),
    )
    result = run_sweep(config, tmp_path / "work")
    assert len(stored) == 1  # the database's ImageNet words are stored once for the whole sweep
    for value in (1, 4):
        ids = result.runs[value].ids
        assert (ids >= 0).sum() > 0
        assert np.isin(ids[ids >= 0], np.arange(80)).all()  # train images are the database
        details = result.runs[value].details
        assert details["params"]["top_iwk"] == value
        assert set(result.scores[value]) == {"seed-002-iwan", "semret"}
    # more predicted words per image: at least as many image -> word links
    assert result.runs[4].details["graph"]["image_links"] >= result.runs[1].details["graph"]["image_links"]
    written = write_sweep(result, tmp_path / "out")
    plots = {path.name for path in written.values() if path.suffix == ".png"}
    assert plots == {
        *SWEEP_PLOTS.values(),
        "sweep_map_semret.png",
        "sweep_mahp_semret.png",
        "sweep_map_vs_mahp_semret.png",
    }
    for name in plots:
        (tmp_path / "out" / name).unlink()
    assert {p.name for p in redraw_sweep(tmp_path / "out").values()} == plots  # from sweep.csv and sweep.json
    assert all((tmp_path / "out" / name).is_file() for name in plots)
    single = run_evaluation(replace(config, sweep=None, params={"iwan-published": {"top_iwk": 4}}), tmp_path / "one")
    np.testing.assert_array_equal(single.runs["iwan-published"].ids, result.runs[4].ids)


def test_iwan_published_needs_an_imagenet_head(sqlite_url: str, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    data = write_patterned_fashion(tmp_path / "fashion")
    config = tiny_config(data, sqlite_url, tmp_path / "cache", methods=("exact", "iwan-published"))
    with pytest.raises(SemretError, match="iwan-published needs a backbone with its ImageNet classifier"):
        run_evaluation(config, tmp_path / "work")
    assert "iwan-published" not in tiny_config(data, sqlite_url, tmp_path / "cache").methods  # all it can run
    assert "iwan-published" in EvalConfig(dataset="fashion-mnist").methods  # efficientnet-lite0, ImageNet


def test_the_mahp_plot_has_no_point_where_every_ranking_scores_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.axes import Axes

    result = two_seed_result()
    for seed in result.seed_scores.values():
        for method in ("a", "b"):
            seed["semret"][method]["mAHP"] = {1: 0.0, 2: 0.25}
    drawn: list[tuple[list[int], list[float]]] = []
    errorbar = Axes.errorbar

    def record(self: Axes, x: pd.Series, y: pd.Series, *args: object, **kwargs: object) -> object:
        drawn.append((list(x), list(y)))
        return errorbar(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", record)
    written = write_plots(result, tmp_path)
    assert set(written) == {"mAP", "mAHP", "time"} and all(path.is_file() for path in written.values())
    (mahp_a, mahp_b) = drawn[2:]  # mAP's two lines come first
    assert mahp_a == mahp_b == ([2], [0.25])  # mAHP@1 (0 by the trapezoid) is left out, as "-" in the tables
    assert drawn[0][0] == [1, 2]  # mAP keeps every k
