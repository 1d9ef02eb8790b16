"""`semret demo`, the README's main command: the whole pipeline on the packaged sample, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.app.demo import DEMO_BACKBONE, DEMO_IMAGE_SIZE, DEMO_SKIPS, sample_dir
from semret.evaluation.runs import METHODS
from semret.iwan.norms import sample_norms_dir
from semret.vision.datasets import load_dataset
from semret.vision.idx import read_idx

from helpers import ok

SHARED_FASHION = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"


def test_the_packaged_sample_is_balanced_real_fashion_mnist() -> None:
    test = load_dataset("fashion-mnist", "test", sample_dir())
    train = load_dataset("fashion-mnist", "train", sample_dir())
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert np.bincount(train.labels).tolist() == [200] * 10
    assert (sample_dir() / "COPYRIGHT").is_file() and (sample_norms_dir() / "README.md").is_file()


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="the full Fashion-MNIST is not beside the checkout")
def test_the_sample_holds_the_original_images_it_says() -> None:
    lines = dict(line.split(": ", 1) for line in (sample_dir() / "indices.txt").read_text().splitlines())
    for prefix in ("t10k", "train"):
        chosen = np.array(lines[prefix].split(), dtype=np.int64)
        original = read_idx(SHARED_FASHION / f"{prefix}-images-idx3-ubyte.gz")[chosen]
        assert np.array_equal(read_idx(sample_dir() / f"{prefix}-images-idx3-ubyte.gz"), original)


@pytest.mark.long
def test_demo_runs_end_to_end_on_the_embedded_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report"
    result = ok("demo", "--out", out, "--cache-dir", tmp_path / "cache")
    assert "mAHP@k" in result.output and f"report written to {out}" in result.output
    # everything written there, hash model included, each with its absolute path on a line of its own
    listed = [line.strip() for line in result.stdout.split(f"report written to {out}:")[1].splitlines() if line.strip()]
    assert listed == sorted(str(path) for path in out.rglob("*") if path.is_file())
    assert {"results.json", "rankings.npz", "hash-model.pt", "iwan-classifier.pt"} <= {
        Path(line).name for line in listed
    }
    # a contact sheet per method of its best and worst queries (semret.app.sheets)
    sheets = {Path(line).relative_to(out).as_posix() for line in listed if "/sheets/" in line}
    methods = json.loads((out / "results.json").read_text())["methods"]
    assert sheets == {f"sheets/{method}.png" for method in methods}
    document = json.loads((out / "results.json").read_text())
    summary = document["summary"]
    assert (summary["queries"], summary["database_images"], summary["train_images"]) == (1000, 1000, 2000)
    assert summary["database_backend"] == "sqlite"
    assert list(document["methods"]) == [m for m in METHODS if m not in DEMO_SKIPS]  # all but two
    assert {"cimon", "fourier-lsh"} == DEMO_SKIPS
    # ImageNet features on real images: far above chance (0.1) for the baseline and for IWAN
    assert document["methods"]["exact"]["metrics"]["P"]["1"] > 0.6
    assert document["methods"]["iwan"]["metrics"]["mAP"]["10"] > 0.5
    check_queries_equal_the_evaluation(document, out, tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative --out is printed as an absolute path
    second = ok("demo", "--out", "report", "--cache-dir", tmp_path / "cache")  # a rerun: nothing to load again
    assert "loaded the norms sample" not in second.output
    assert f"report written to {out}:" in second.stdout and f"  {out / 'hash-model.pt'}" in second.stdout
    assert (
        json.loads((out / "results.json").read_text())["methods"]["exact"]["metrics"]
        == (document["methods"]["exact"]["metrics"])
    )


def query_ids(*args: object) -> list[int]:
    return [row["image_id"] for row in json.loads(ok("query", *args, "--json").stdout)["results"]]


def check_queries_equal_the_evaluation(document: dict, out: Path, tmp_path: Path) -> None:
    """`semret query ...` and `semret eval` give the same results for the same method and k: one
    search contract, the query image left out by ``exclude_ids`` in both."""
    collection = document["summary"]["collection"]
    model = document["methods"]["hash"]["details"]["model"]
    rankings = np.load(out / "rankings.npz")
    index = tmp_path / "exact.npz"
    ok(
        "index", "build", "--spec", "exact", "--collection", collection, "--backbone", DEMO_BACKBONE,
        "--image-size", str(DEMO_IMAGE_SIZE), "--cache-dir", tmp_path / "cache", "--out", index,
    )  # fmt: skip
    k = rankings["ids_exact"].shape[1]  # the evaluation's largest k: the re-rank's shortlist (2k) depends on k
    for row in (0, 417, 999):
        image = str(int(rankings["query_ids"][row]))
        expected = {method: rankings[f"ids_{method}"][row, :k].tolist() for method in document["methods"]}
        hash_args = ("hash", "--collection", collection, "--model", model, "--image-id", image, "-k", str(k))
        assert query_ids(*hash_args, "--mode", "rerank") == expected["hash-rerank"]
        assert query_ids(*hash_args, "--mode", "hamming", "--in-db") == expected["hash"]
        assert query_ids(*hash_args, "--mode", "hamming") == expected["hash"]
        assert query_ids("vector", "--index", index, "--image-id", image, "-k", str(k)) == expected["exact"]
    # iwan-published ran last, so the collection holds its graph; then semret's own graph, rebuilt
    # from the words the evaluation's iwan stored, with the evaluation's settings
    for method in ("iwan-published", "iwan"):
        if method == "iwan":
            ok("iwan", "build", "--collection", collection, "--top-iwk", "4", "--top-wwk", "4")
        for row in (0, 417, 999):
            image = str(int(rankings["query_ids"][row]))
            expected_ids = rankings[f"ids_{method}"][row, :k].tolist()
            iwan_args = ("iwan", "--collection", collection, "--image-id", image, "-k", str(k))
            assert query_ids(*iwan_args) == expected_ids, method
            assert query_ids(*iwan_args, "--in-sql") == expected_ids, method
