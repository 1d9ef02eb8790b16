"""`semret demo`, the README's main command: the whole pipeline on the packaged sample, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.evaluation.demo import sample_dir
from semret.evaluation.methods import METHODS
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


def test_demo_runs_end_to_end_on_the_embedded_database(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = ok("demo", "--out", out, "--cache-dir", tmp_path / "cache")
    assert "mAHP@k" in result.output and f"report written to {out}" in result.output
    document = json.loads((out / "results.json").read_text())
    summary = document["summary"]
    assert (summary["queries"], summary["database_images"], summary["train_images"]) == (1000, 1000, 2000)
    assert summary["database_backend"] == "sqlite"
    assert list(document["methods"]) == list(METHODS)
    # ImageNet features on real images: far above chance (0.1) for the baseline and for IWAN
    assert document["methods"]["exact"]["metrics"]["P"]["1"] > 0.6
    assert document["methods"]["iwan"]["metrics"]["mAP"]["10"] > 0.5
    second = ok("demo", "--out", out, "--cache-dir", tmp_path / "cache")  # a rerun: nothing to load again
    assert "loaded the norms sample" not in second.output
    assert (
        json.loads((out / "results.json").read_text())["methods"]["exact"]["metrics"]
        == (document["methods"]["exact"]["metrics"])
    )
