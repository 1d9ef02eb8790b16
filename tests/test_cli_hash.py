"""`semret hash train/encode` and `semret query hash` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import FASHION_MNIST_LABELS, ok, semret

NAMES = FASHION_MNIST_LABELS


@pytest.fixture(scope="module")
def features_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    features = rng.normal(size=(10, 16))[labels] + 0.2 * rng.normal(size=(300, 16))
    path = tmp_path_factory.mktemp("data") / "features.npz"
    names = np.array(NAMES)
    np.savez(
        path,
        image_ids=np.arange(1000, 1300),
        features=features.astype(np.float32),
        labels=names[labels],
        class_names=names,
    )
    return path


@pytest.fixture(scope="module")
def model_file(features_file: Path) -> Path:
    out = features_file.parent / "fm.pt"
    trained = ok(
        "hash",
        "train",
        features_file,
        "--hierarchy",
        "fashion-mnist",
        "--out",
        out,
        "--bits",
        "32",
        "--epochs",
        "30",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
    )
    assert "trained on 300 features" in trained.stdout and "training" in trained.stderr  # progress bar
    accuracy = float(trained.stdout.split("training accuracy (nearest class embedding) ")[1].split(";")[0])
    assert accuracy > 0.9
    return out


def test_encode_and_query_in_every_mode(database_url: str, features_file: Path, model_file: Path) -> None:
    ok("db", "upgrade", "--db", database_url)
    encoded = ok("hash", "encode", model_file, features_file, "--collection", "shop", "--create", "--db", database_url)
    assert "model fm (32 bits): 300 images of shop encoded; stored 300 new, 0 changed" in encoded.stdout
    again = ok("hash", "encode", model_file, features_file, "--collection", "shop", "--db", database_url)
    assert "stored 0 new, 0 changed" in again.stdout

    def query(*extra: str) -> list[dict]:
        args = ("query", "hash", "--collection", "shop", "--model", "fm", "--image-id", "1000", "--json", "--db")
        return json.loads(ok(*args, database_url, *extra).stdout)["results"]

    exact, rerank = query("--mode", "exact", "-k", "5"), query("--mode", "rerank", "-k", "5", "--shortlist", "299")
    assert exact == rerank  # a shortlist of every other image re-ranks everything
    assert len(query("--mode", "rerank", "-k", "5", "--shortlist", "5")) == 5  # m = k works
    assert all(r["image_id"] != 1000 for r in exact) and len(exact) == 5
    assert [r["score"] for r in exact] == sorted((r["score"] for r in exact), reverse=True)
    hamming, in_db = query("--mode", "hamming", "-k", "7"), query("--mode", "hamming", "-k", "7", "--in-db")
    assert hamming == in_db
    # an approximate Hamming shortlist that probes every list is the exact one
    assert query("--mode", "hamming", "-k", "7", "--hamming", "ivf:nlist=4,nprobe=4") == hamming
    # Hamming distances are shown as such: whole numbers, the score their negation
    assert all(r["hamming_distance"] == -r["score"] and r["hamming_distance"] >= 0 for r in hamming)
    shown = ok("query", "hash", "--collection", "shop", "--model", "fm", "--image-id", "1000", "--mode", "hamming",
               "-k", "3", "--db", database_url).stdout  # fmt: skip
    assert "Hamming distance" in shown and f" {hamming[0]['hamming_distance']} " in shown
    # results are bounded by the collection: a huge k gives the 299 other images
    assert len(query("--mode", "exact", "-k", "1000000000")) == 299
    too_big = semret("query", "hash", "--collection", "shop", "--model", "fm", "--image-id", "1000",
                     "-k", str(2**63), "--db", database_url)  # fmt: skip
    assert too_big.exit_code == 1 and "k must be at most 9223372036854775807" in too_big.stderr
    table = ok("query", "hash", "--collection", "shop", "--model", "fm", "--image-id", "1000", "--db", database_url)
    assert "rerank: the 10 images nearest to image 1000 in shop (model fm)" in table.stdout


def test_hash_errors_are_clear(sqlite_url: str, features_file: Path, model_file: Path, tmp_path: Path) -> None:
    no_backbone = tmp_path / "images.npz"
    np.savez(
        no_backbone,
        image_ids=np.arange(2),
        images=np.zeros((2, 8, 8), np.uint8),
        labels=np.array([0, 1]),
        class_names=np.array(NAMES),
    )
    result = semret("hash", "train", no_backbone, "--hierarchy", "fashion-mnist", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and "holds images: choose a --backbone" in result.stderr
    result = semret(
        "hash",
        "train",
        features_file,
        "--hierarchy",
        "fashion-mnist",
        "--out",
        tmp_path / "m.pt",
        "--backbone",
        "small-cnn",
    )
    assert result.exit_code == 1 and "holds features already" in result.stderr
    result = semret("hash", "train", features_file, "--hierarchy", "imagenet", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and "no hierarchy 'imagenet'" in result.stderr and "cifar100" in result.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    result = semret("hash", "encode", corrupt, features_file, "--collection", "shop", "--db", sqlite_url)
    assert result.exit_code == 1 and "not a readable hash model checkpoint" in result.stderr
    ok("db", "upgrade", "--db", sqlite_url)
    ok("hash", "encode", model_file, features_file, "--collection", "shop", "--create", "--db", sqlite_url)
    base = ("query", "hash", "--collection", "shop", "--model", "fm", "--db", sqlite_url)
    result = semret(*base, "--image-id", "5")
    assert result.exit_code == 1 and "image 5 has no code of model 'fm'" in result.stderr
    result = semret(*base, "--image-id", "1000", "--in-db")
    assert result.exit_code == 1 and "use it with --mode hamming" in result.stderr
    result = semret(*base, "--image-id", "1000", "--mode", "fast")
    assert result.exit_code == 1 and "unknown retrieval mode 'fast'" in result.stderr
    result = semret(*base, "--image-id", "1000", "--hamming", "lsh")
    assert result.exit_code == 1 and "unknown Hamming index kind 'lsh'" in result.stderr
    for shortlist in ("0", "-5"):  # named as the shortlist, not as a derived k
        result = semret(*base, "--image-id", "1000", "--shortlist", shortlist)
        assert result.exit_code == 1 and f"shortlist must be at least 1, got {shortlist}" in result.stderr


def test_encoding_never_creates_or_grows_a_collection_without_a_flag(
    sqlite_url: str, features_file: Path, model_file: Path, tmp_path: Path
) -> None:
    ok("db", "upgrade", "--db", sqlite_url)
    typo = semret("hash", "encode", model_file, features_file, "--collection", "nosuch", "--db", sqlite_url)
    assert typo.exit_code == 1 and "collection 'nosuch' does not exist" in typo.stderr and "--create" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1 and "Traceback" not in typo.output
    assert json.loads(ok("collection", "list", "--json", "--db", sqlite_url).stdout) == []

    ok("hash", "encode", model_file, features_file, "--collection", "shop", "--create", "--db", sqlite_url)
    more = tmp_path / "more.npz"
    with np.load(features_file) as arrays:  # the same images and 50 new ones
        extra = {key: np.concatenate([arrays[key], arrays[key][:50]]) for key in ("features", "labels")}
        np.savez(more, image_ids=np.arange(1000, 1350), class_names=arrays["class_names"], **extra)
    grows = semret("hash", "encode", model_file, more, "--collection", "shop", "--db", sqlite_url)
    assert grows.exit_code == 1 and "--add-images" in grows.stderr and "50 images are not in collection" in grows.stderr
    assert len(grows.stderr.strip().splitlines()) == 1
    (shop,) = json.loads(ok("collection", "list", "--json", "--db", sqlite_url).stdout)
    assert shop["images"] == 300
    added = ok("hash", "encode", model_file, more, "--collection", "shop", "--add-images", "--db", sqlite_url)
    assert "350 images of shop encoded; stored 50 new, 0 changed" in added.stdout
