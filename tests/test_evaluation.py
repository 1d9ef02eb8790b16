"""The evaluation pipeline end to end on a tiny patterned Fashion-MNIST-like data set: every method,
both protocols, the report files, reproducibility, and the errors a user can cause."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from semret.app.demo import prepare_database
from semret.app.eval_pipeline import run_evaluation
from semret.errors import SemretError
from semret.evaluation.report import RANKINGS_FILE, RESULTS_FILE, results_document, tables, write_results
from semret.evaluation.runs import METHODS, EvalConfig, EvalResult
from semret.evaluation.scoring import METRICS
from semret.hashing.cimon import CimonHasher
from semret.sql import migrations
from semret.sql.engine import describe_url, make_engine
from semret.vision.backbones import make_backbone
from semret.vision.datasets import load_dataset
from semret.vision.features import extract_features
from semret.vision.idx import write_idx

from helpers import ok, semret

TRAIN_PER_CLASS, TEST_PER_CLASS = 8, 6


def write_patterned_fashion(folder: Path, seed: int = 0) -> Path:
    """Fashion-MNIST's four IDX files with 10 classes told apart by where a bright band lies."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, per_class in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
        labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
        images = rng.integers(0, 60, (len(labels), 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 3 : 2 * label + 7, 3:25] = 230
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_patterned_fashion(tmp_path / "fashion")


def tiny_config(data_dir: Path, url: str, cache: Path, **changes: object) -> EvalConfig:
    config = EvalConfig(
        dataset="fashion-mnist",
        data_dir=str(data_dir),
        backbone="small-cnn",
        image_size=16,
        backbone_epochs=2,
        ks=(1, 5, 10),
        database_url=url,
        cache_dir=str(cache),
        params={
            "hash": {"epochs": 5},
            "cimon": {"epochs": 3, "n_clusters": 3, "n_views": 2},
            "classifier": {"epochs": 40},
            "neural-lsh": {"epochs": 1, "n_tables": 2},
            "neural-lsh-knn": {"epochs": 1, "n_tables": 2},
            "fourier-lsh": {"epochs": 1, "n_components": 4, "samples_per_dim": 2, "train_queries": 8},
        },
    )
    return replace(config, **changes)  # type: ignore[arg-type]


def run(config: EvalConfig, work: Path) -> EvalResult:
    work.mkdir(parents=True, exist_ok=True)
    return run_evaluation(config, work)


def check_rankings(result: EvalResult) -> None:
    """Every method: one row of max-k ids per query, never the query itself, only database ids."""
    for method, method_run in result.runs.items():
        ids = method_run.ids
        assert ids.shape == (len(result.query_ids), max(result.config.ks)), method
        assert not (ids == result.query_ids[:, None]).any(), f"{method} returns a query among its own results"
        found = ids[ids >= 0]
        assert np.isin(found, result.database_ids).all(), method
        for row in ids:  # no image twice in a row
            kept = row[row >= 0]
            assert len(np.unique(kept)) == len(kept), method
        assert len(method_run.query_seconds) == len(result.query_ids)
        for metric in METRICS:
            assert all(0.0 <= value <= 1.0 for value in result.scores[method][metric].values()), (method, metric)


def test_every_method_on_the_published_protocol(database_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(database_url)
    result = run(tiny_config(tiny, database_url, tmp_path / "cache"), tmp_path / "work")
    # every method but iwan-published, which needs an ImageNet classifier that small-cnn lacks
    assert list(result.runs) == [m for m in METHODS if m != "iwan-published"]
    test = load_dataset("fashion-mnist", "test", tiny)
    assert result.database_ids.tolist() == sorted(test.image_ids.tolist())
    assert sorted(result.query_ids.tolist()) == sorted(test.image_ids.tolist())
    check_rankings(result)

    # exact = brute-force cosine over the features of the trained backbone, ties by id
    (weights,) = (tmp_path / "cache" / "weights").glob("*.pth")
    features = extract_features(make_backbone("small-cnn", str(weights), 16), test.images)
    order = np.argsort(test.image_ids)
    ids, vectors = test.image_ids[order], features[order]
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for row, query in enumerate(result.query_ids):
        q = int(np.searchsorted(ids, query))
        similarity = vectors @ vectors[q]
        ranked = [int(ids[i]) for i in np.lexsort((ids, -similarity)) if ids[i] != query][:10]
        assert result.runs["exact"].ids[row].tolist() == ranked

    # the classes are easy: a working pipeline is far above chance (0.1) at the top
    assert result.scores["exact"]["P"][1] > 0.6
    assert result.scores["iwan"]["P"][1] > 0.6
    assert result.runs["iwan"].details["classifier"]["query_accuracy"] > 0.6
    hash_details = result.runs["hash"].details
    assert hash_details["model"].startswith(f"{result.collection}-hash-small-cnn-sha256-")
    assert 1 <= hash_details["distinct_database_codes"] <= len(result.database_ids)
    expected_search = "postgresql" if database_url.startswith("postgresql") else "memory (codes read from the store)"
    assert result.runs["hash"].details["searched_in"] == expected_search
    # cimon: its codes stored and searched like hash's; its checkpoint names the run's backbone,
    # so that `semret hash encode` encodes other images with the same one
    cimon = result.runs["cimon"].details
    assert (
        cimon["model"].startswith(f"{result.collection}-cimon-small-cnn-") and cimon["searched_in"] == expected_search
    )
    assert cimon["training_images"] == result.summary["train_images"] and cimon["params"]["n_views"] == 2
    source = CimonHasher.load(tmp_path / "work" / "cimon-model.pt").feature_source_
    assert source is not None and (source["backbone"], source["image_size"], source["views"]) == ("small-cnn", 16, 2)
    assert source["weights"].startswith("sha256:")
    # a classifier on each kind of code beats chance (0.1) on these easy classes
    for method in ("hash", "cimon", "neural-lsh", "fourier-lsh"):
        assert result.runs[method].details["code_classification_accuracy"] > 0.3, method


def test_a_rerun_gives_the_same_rankings_and_reuses_what_it_can(sqlite_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    config = tiny_config(tiny, sqlite_url, tmp_path / "cache", methods=("exact", "hash", "kmeans", "iwan"))
    first = run(config, tmp_path / "one")
    second = run(config, tmp_path / "two")
    assert first.collection == second.collection
    for method in config.methods:
        assert np.array_equal(first.runs[method].ids, second.runs[method].ids), method
        assert first.scores[method] == second.scores[method], method
    assert len(list((tmp_path / "cache" / "weights").glob("*.pth"))) == 1  # trained once

    other_seed = run(replace(config, seed=1, queries=20), tmp_path / "three")
    assert len(other_seed.query_ids) == 20
    assert not np.array_equal(np.sort(other_seed.query_ids), np.sort(first.query_ids))


def test_train_as_database_and_test_as_queries(sqlite_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    config = tiny_config(tiny, sqlite_url, tmp_path / "cache", protocol="train-test", methods=("exact", "hash", "iwan"))
    result = run(config, tmp_path / "work")
    assert result.database_ids.tolist() == list(range(10 * TRAIN_PER_CLASS))
    assert (result.query_ids >= 60_000).all() and len(result.query_ids) == 10 * TEST_PER_CLASS
    check_rankings(result)
    # every database image of the query's class counts as relevant: with 8 per class, P@10 <= 0.8
    assert result.scores["exact"]["P"][10] <= 0.8 + 1e-9


def test_report_files_and_tables(sqlite_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    result = run(tiny_config(tiny, sqlite_url, tmp_path / "cache", methods=("exact", "lsh")), tmp_path / "work")
    written = write_results(result, tmp_path / "report")
    document = json.loads((tmp_path / "report" / RESULTS_FILE).read_text())
    assert document["config"]["methods"] == ["exact", "lsh"]
    assert document["summary"]["queries"] == 60 and document["summary"]["database_images"] == 60
    assert set(document["methods"]) == {"exact", "lsh"}
    assert document["methods"]["exact"]["metrics"]["mAP"]["10"] == pytest.approx(result.scores["exact"]["mAP"][10])
    assert {"query_ms_mean", "build_seconds"} <= set(document["methods"]["lsh"]["timing"])
    assert "torch" in document["versions"]
    with np.load(tmp_path / "report" / RANKINGS_FILE) as rankings:
        assert np.array_equal(rankings["ids_exact"], result.runs["exact"].ids)
        assert np.array_equal(rankings["query_ids"], result.query_ids)
    for key in ("mAP", "mAHP", "time"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = Console(record=True, width=200)
    for table in tables(result):
        console.print(table)
    text = console.export_text()
    assert "mAHP@k" in text and "exact" in text and "query ms" in text


def test_errors_name_the_problem(sqlite_url: str, tiny: Path, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    migrations.upgrade(engine)
    with pytest.raises(SemretError, match="no norms are loaded"):
        run(tiny_config(tiny, sqlite_url, tmp_path / "cache"), tmp_path / "work")
    prepare_database(sqlite_url)
    with pytest.raises(SemretError, match="k = 100 is more than the 60 database images"):
        run(tiny_config(tiny, sqlite_url, tmp_path / "cache", ks=(1, 100), methods=("exact",)), tmp_path / "work")
    with pytest.raises(SemretError, match="unknown protocol 'mine'"):
        run(tiny_config(tiny, sqlite_url, tmp_path / "cache", protocol="mine"), tmp_path / "work")
    with pytest.raises(SemretError, match="lsh has no parameter bits"):
        config = tiny_config(tiny, sqlite_url, tmp_path / "cache", methods=("lsh",), params={"lsh": {"bits": 3}})
        run(config, tmp_path / "work")


def test_eval_command(database_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(database_url)
    out = tmp_path / "report"
    result = ok(
        "eval", "--dataset", "fashion-mnist", "--data-dir", tiny, "--backbone", "small-cnn", "--image-size", "16",
        "--backbone-epochs", "1", "--methods", "exact,hash-rerank,iwan", "--ks", "1,5", "--queries", "12",
        "--set", "hash.epochs=3", "--set", "iwan.ranker=memory", "--cache-dir", tmp_path / "cache",
        "--db", database_url, "--out", out,
    )  # fmt: skip
    assert "mAP@k" in result.output and "mAHP@k" in result.output and "hash-rerank" in result.output
    assert f"report written to {out}" in result.output
    document = json.loads((out / RESULTS_FILE).read_text())
    assert document["summary"]["queries"] == 12
    assert document["methods"]["iwan"]["details"]["params"]["ranker"] == "memory"
    assert document["config"]["database_url"] == describe_url(database_url)  # never a password


def test_results_never_hold_a_database_password(sqlite_url: str, tiny: Path, tmp_path: Path) -> None:
    prepare_database(sqlite_url)
    result = run(tiny_config(tiny, sqlite_url, tmp_path / "cache", methods=("exact",)), tmp_path / "work")
    secret = replace(result.config, database_url="postgresql+psycopg://me:s3cret@db.example/semret")
    document = results_document(replace(result, config=secret))
    assert "s3cret" not in json.dumps(document)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "exact,magic"], "unknown method(s) magic"),
        (["--ks", "1,x"], "--ks must be integers"),
        (["--set", "lsh.n_bits"], "--set takes METHOD.PARAMETER=VALUE"),
        (["--set", "magic.x=1"], "--set: unknown method magic"),
        # every parameter is checked before any work: --data-dir does not even exist
        (["--set", "lsh.bogus=3", "--data-dir", "/nonexistent"], "--set lsh has no parameter bogus"),
        (["--set", "kmeans:n_probe=0", "--data-dir", "/nonexistent"], "n_probe must be an integer"),
        (["--set", "hash.shortlist=-5", "--data-dir", "/nonexistent"], "shortlist must be at least 1, got -5"),
        (["--set", "iwan.ranker=gpu", "--data-dir", "/nonexistent"], "iwan.ranker must be 'sql' or 'memory'"),
        (["--set", "lsh.seed=3"], "the run's --seed sets it"),
        (["--set", "cimon.n_views=1", "--data-dir", "/nonexistent"], "cimon.n_views must be"),
        (["--set", "cimon.colour=1", "--data-dir", "/nonexistent"], "--set cimon: no parameter colour"),
        (["--set", "fourier-lsh:rank_weight=2", "--data-dir", "/nonexistent"], "rank_weight must be"),
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--backbone", "vgg"], "unknown backbone 'vgg'"),
    ],
)
def test_eval_command_rejects_bad_options(sqlite_url: str, args: list[str], message: str) -> None:
    base = {"--dataset": "fashion-mnist"}
    if args[0] in base:
        base = {}
    flat = [item for pair in base.items() for item in pair]
    result = semret("eval", *flat, *args, "--db", sqlite_url)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_untrained_weights_are_drawn_from_the_seed_and_cached_apart(
    sqlite_url: str, tiny: Path, tmp_path: Path
) -> None:
    prepare_database(sqlite_url)
    config = tiny_config(tiny, sqlite_url, tmp_path / "cache", backbone_epochs=0, methods=("exact",))
    first = run(config, tmp_path / "one")
    (tmp_path / "cache" / "weights" / "small-cnn_random_16px_s0.pth").unlink()  # drawn again from seed 0
    again = run(config, tmp_path / "two")
    assert np.array_equal(first.runs["exact"].ids, again.runs["exact"].ids)
    other = run(replace(config, seed=1), tmp_path / "three")
    # train and test features: seed 0 (drawn twice, the same weights) and seed 1 apart
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 4
    assert not np.array_equal(np.sort(first.runs["exact"].ids, axis=1), np.sort(other.runs["exact"].ids, axis=1))


def test_a_folder_without_a_test_split_is_split_per_class(sqlite_url: str, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for label, colour in enumerate(((220, 30, 30), (30, 220, 30), (30, 30, 220))):
        for i in range(10):
            pixels = np.clip(rng.normal(colour, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            (root / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / f"class{label}" / f"{i}.png")
    migrations.upgrade(make_engine(sqlite_url))
    config = EvalConfig(
        dataset="folder",
        data_dir=str(root),
        backbone="small-cnn",
        image_size=16,
        backbone_epochs=0,
        methods=("exact", "hash"),
        ks=(1, 5),
        database_url=sqlite_url,
        cache_dir=str(tmp_path / "cache"),
        params={"hash": {"epochs": 3}},
    )
    result = run(config, tmp_path / "work")
    assert result.summary["hierarchy"] == "flat"
    assert len(result.database_ids) == 6 and result.summary["train_images"] == 24  # 2 of 10 per class held out
    check_rankings(result)
    assert result.scores["exact"]["P"][1] == 1.0  # three colours: the nearest image is always of the same class
