"""The README's workflow on stored collections: every input made from a collection of the shipped
Fashion-MNIST sample (`features extract`, `classify`), and `--collection` in place of a file for
`iwan link`, `hash train` (semantic and CIMON), `hash encode` and `index build`. SQLite; random small-CNN features at
16 px keep it fast (what is tested is the plumbing, not the retrieval quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.app.demo import sample_dir
from semret.iwan.links import read_predictions
from semret.vision.arrays import read_labelled_arrays
from semret.vision.backbones import make_backbone
from semret.vision.datasets import load_dataset
from semret.vision.features import FeatureCache, FeatureKey

from helpers import ok, semret

TEST, TRAIN = "fashion-mnist-test", "fashion-mnist-train"
FAST_BACKBONE = ["--backbone", "small-cnn", "--weights", "none", "--image-size", "16"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite database with the norms sample and the sample's two splits as collections, and a cache."""
    folder = tmp_path_factory.mktemp("workflow")
    url = f"sqlite+pysqlite:///{folder / 'semret.sqlite3'}"
    ok("db", "upgrade", "--db", url)
    ok("norms", "load", "--sample", "--db", url)
    for split in ("test", "train"):
        ok("collection", "import", "--dataset", "fashion-mnist", "--data-dir", sample_dir(), "--split", split,
           "--db", url)  # fmt: skip
    return url, folder / "cache"


def features(store: tuple[str, Path]) -> list[str]:
    """The feature options every command takes: a fast backbone, the test's cache and database."""
    url, cache = store
    return [*FAST_BACKBONE, "--cache-dir", str(cache), "--db", url]


def test_features_extract_computes_once_and_writes_the_labelled_arrays(store: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "features.npz"
    first = ok("features", "extract", "--collection", TEST, *features(store), "--out", out)
    assert "features of 1,000 images of fashion-mnist-test (small-cnn, none weights, 16 px, 256 dims)" in first.stdout
    assert "features" in first.stderr  # the progress bar
    assert f"written to {out}" in first.stdout
    arrays = read_labelled_arrays(out)
    sample = load_dataset("fashion-mnist", "test", sample_dir())
    assert arrays.kind == "features" and arrays.data.shape == (1000, 256)
    assert np.array_equal(arrays.image_ids, sample.image_ids) and arrays.image_ids[0] == 60_000
    assert np.array_equal(arrays.labels, sample.labels) and arrays.class_names == sample.class_names
    again = ok("features", "extract", "--collection", TEST, *features(store))
    assert "read from the cache" in again.stdout and "written to" not in again.stdout
    # the key is the one `semret eval` and `semret demo` use for the same images: they share the cache
    backbone = make_backbone("small-cnn", "none", 16, seed=0)
    key = FeatureKey.for_backbone("fashion-mnist", "test", sample.fingerprint(), backbone)
    assert FeatureCache(store[1]).is_complete(key)
    np.testing.assert_array_equal(FeatureCache(store[1]).features(key, sample.images, backbone), arrays.data)


def test_features_extract_errors_are_clear(store: tuple[str, Path]) -> None:
    no_split = semret("features", "extract", "--collection", TEST, "--split", "train", *features(store))
    assert no_split.exit_code == 1 and "collection 'fashion-mnist-test' has no train images" in no_split.stderr
    unknown = semret("features", "extract", "--collection", "nosuch", *features(store))
    assert unknown.exit_code == 1 and "unknown collection 'nosuch'" in unknown.stderr
    url = store[0]
    ok("iwan", "link", "--collection", "hand-made", "--create", "--db", url,
       write_predictions_file(store[1].parent / "hand.npz"))  # fmt: skip
    sourceless = semret("features", "extract", "--collection", "hand-made", *features(store))
    assert sourceless.exit_code == 1 and "was not imported from a dataset" in sourceless.stderr


def write_predictions_file(path: Path) -> Path:
    np.savez(path, image_ids=np.array([1, 2]), probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]),
             class_names=np.array(["Shirt", "Coat"]))  # fmt: skip
    return path


def test_classify_links_the_collection_or_writes_predictions_for_iwan_link(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url = store[0]
    args = ("classify", "--collection", TEST, "--train-collection", TRAIN, "--epochs", "3", *features(store))
    linked = ok(*args)
    assert "classifier trained on 2,000 images of fashion-mnist-train" in linked.stdout
    assert "SWEATER" in linked.stdout  # the dataset's aliases: Pullover -> SWEATER
    assert "collection fashion-mnist-test: images inserted 0, updated 0; image words inserted 10,000" in linked.stdout
    (summary,) = [c for c in json.loads(ok("collection", "list", "--json", "--db", url).stdout) if c["name"] == TEST]
    assert summary["images_with_words"] == 1000 and summary["images"] == 1000

    out = tmp_path / "predictions.npz"
    written = ok(*args, "--out", out)
    assert f"predictions written to {out}" in written.stdout
    predictions = read_predictions(out)
    assert predictions.probabilities.shape == (1000, 10) and predictions.image_ids[0] == 60_000
    assert predictions.labels[0] == load_dataset("fashion-mnist", "test", sample_dir()).label_names()[0]
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0)

    # the file goes into the same collection without a flag: its images are all there
    relinked = ok("iwan", "link", out, "--collection", TEST, "--dataset", "fashion-mnist", "--db", url)
    assert "images inserted 0, updated 0; image words inserted 0, updated 0, deleted 0" in relinked.stdout
    ok("iwan", "build", "--collection", TEST, "--db", url)
    found = json.loads(ok("query", "iwan", "--collection", TEST, "--image-id", "60000", "-k", "5", "--json",
                          "--db", url).stdout)  # fmt: skip
    assert len(found["results"]) == 5 and all(r["image_id"] != 60_000 for r in found["results"])


def test_iwan_link_classifies_a_collection_without_a_file(store: tuple[str, Path]) -> None:
    linked = ok("iwan", "link", "--collection", TEST, "--train-collection", TRAIN, *features(store))
    assert "classifier trained on 2,000 images" in linked.stdout and "image words" in linked.stdout


def test_classify_needs_train_images(store: tuple[str, Path]) -> None:
    result = semret("classify", "--collection", TEST, *features(store))
    assert result.exit_code == 1 and "has no train images" in result.stderr and "--train-collection" in result.stderr
    mixed = ok("classify", "--collection", TRAIN, "--epochs", "2", "--out", store[1].parent / "p.npz", *features(store))
    assert "trained on 2,000 images of fashion-mnist-train" in mixed.stdout  # its own train split


def test_hash_train_and_encode_from_collections(store: tuple[str, Path], tmp_path: Path) -> None:
    url, model = store[0], tmp_path / "fm.pt"
    trained = ok("hash", "train", "--collection", TRAIN, "--hierarchy", "fashion-mnist", "--out", model,
                 "--epochs", "2", "--bits", "16", *features(store))  # fmt: skip
    assert "trained on 2,000 features" in trained.stdout
    encoded = ok("hash", "encode", model, "--collection", TEST, *features(store))
    assert "model fm (16 bits): 1,000 images of fashion-mnist-test encoded; stored 1,000 new" in encoded.stdout
    found = json.loads(ok("query", "hash", "--collection", TEST, "--model", "fm", "--image-id", "60001", "-k", "3",
                          "--json", "--db", url).stdout)  # fmt: skip
    assert len(found["results"]) == 3

    neither = semret("hash", "train", "--hierarchy", "fashion-mnist", "--out", model)
    assert neither.exit_code == 1 and "give the training data once" in neither.stderr
    finetune = semret("hash", "train", "--collection", TRAIN, "--hierarchy", "fashion-mnist", "--out", model,
                      "--finetune", *features(store))  # fmt: skip
    assert finetune.exit_code == 1 and "--finetune trains the backbone on images" in finetune.stderr
    file = tmp_path / "f.npz"
    ok("features", "extract", "--collection", TEST, *features(store), "--out", file)
    with_file = semret("hash", "encode", model, file, "--collection", TEST, "--image-size", "16", "--db", url)
    assert with_file.exit_code == 1 and "--image-size: only for a collection's features" in with_file.stderr


def test_cimon_trains_without_labels_then_encodes_queries_and_classifies(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, model = store[0], tmp_path / "cimon-fm.pt"
    trained = ok("hash", "train", "--method", "cimon", "--collection", TRAIN, "--split", "train", "--out", model,
                 "--bits", "16", "--epochs", "2", "--views", "2", "--graph-size", "300", "--clusters", "10",
                 *features(store))  # fmt: skip
    assert "CIMON trained without labels on 300 images x 2 views" in trained.stdout
    assert "view features" in trained.stderr  # the views' progress bar
    # the checkpoint names its backbone: encoding needs no backbone options
    encoded = ok("hash", "encode", model, "--collection", TEST, "--cache-dir", str(store[1]), "--db", url)
    assert "model cimon-fm (16 bits): 1,000 images of fashion-mnist-test encoded; stored 1,000 new" in encoded.stdout
    ok("hash", "encode", model, "--collection", TRAIN, "--cache-dir", str(store[1]), "--db", url)
    found = json.loads(ok("query", "hash", "--collection", TEST, "--model", "cimon-fm", "--image-id", "60001",
                          "-k", "3", "--json", "--db", url).stdout)  # fmt: skip
    assert len(found["results"]) == 3
    classified = ok("classify", "--collection", TEST, "--train-collection", TRAIN, "--codes", "cimon-fm",
                    "--epochs", "2", "--db", url)  # fmt: skip
    assert "16-bit codes of cimon-fm" in classified.stdout
    again = ok("hash", "train", "--method", "cimon", "--collection", TRAIN, "--split", "train", "--out", model,
               "--bits", "16", "--epochs", "2", "--views", "2", "--graph-size", "300", "--clusters", "10",
               *features(store))  # fmt: skip
    assert "view features" not in again.stderr  # the views' features came from the cache

    other = semret("hash", "encode", model, "--collection", TEST, "--image-size", "24", *features(store)[:4],
                   "--cache-dir", str(store[1]), "--db", url)  # fmt: skip
    assert other.exit_code == 1 and "was trained on other features (image_size 16 there, 24 here)" in other.stderr
    network = semret("hash", "encode", model, "--collection", TEST, "--backbone", "efficientnet-lite0",
                     "--cache-dir", str(store[1]), "--db", url)  # fmt: skip
    assert network.exit_code == 1 and "backbone 'small-cnn' there, 'efficientnet-lite0' here" in network.stderr
    stray = semret("hash", "train", "--collection", TRAIN, "--hierarchy", "fashion-mnist", "--views", "3",
                   "--out", model, *features(store))  # fmt: skip
    assert stray.exit_code == 1 and "--views: only for --method cimon" in stray.stderr
    labels = semret("hash", "train", "--method", "cimon", "--collection", TRAIN, "--hierarchy", "fashion-mnist",
                    "--out", model, *features(store))  # fmt: skip
    assert labels.exit_code == 1 and "CIMON uses no labels" in labels.stderr
    file = tmp_path / "f.npz"
    ok("features", "extract", "--collection", TEST, *features(store), "--out", file)
    from_features = semret("hash", "train", "--method", "cimon", file, "--out", model)
    assert from_features.exit_code == 1 and "holds features: CIMON augments images" in from_features.stderr
    no_hierarchy = semret("hash", "train", "--collection", TRAIN, "--out", model, *features(store))
    assert no_hierarchy.exit_code == 1 and "the semantic hash needs --hierarchy" in no_hierarchy.stderr
    unknown = semret("hash", "train", "--method", "deep", "--collection", TRAIN, "--out", model)
    assert unknown.exit_code == 1 and "unknown --method 'deep'" in unknown.stderr


def test_index_build_from_a_collections_features(store: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lsh.npz"
    built = ok("index", "build", "--spec", "lsh:n_bits=4", "--collection", TEST, *features(store), "--out", out)
    assert "lsh index of 1,000 vectors (256 dims)" in built.stdout
    assert "lsh index parameters" in built.stdout and "n_bits" in built.stdout and "{" not in built.stdout
    found = json.loads(ok("query", "vector", "--index", out, "--image-id", "60000", "-k", "4", "--json").stdout)
    assert len(found["results"]) == 4 and found["results"][0]["label"]
    alone = semret("index", "build", "--spec", "exact", "--collection", TEST, "--out", out, "--db", store[0])
    assert alone.exit_code == 1 and "--collection needs --model" in alone.stderr and "--backbone" in alone.stderr
