"""`semret index build` and `semret query vector` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.core.codes import pack_codes
from semret.hashing.hasher import EncodedImages, SemanticHasher
from semret.indexes import load_index
from semret.sql import migrations
from semret.sql.engine import make_engine
from semret.sql.hash_store import register_model, store_hashes

from helpers import ok, semret

NAMES = np.array(["cat", "dog", "fish"])


@pytest.fixture
def features_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    vectors = rng.normal(size=(3, 8))[labels] + 0.3 * rng.normal(size=(120, 8))
    path = tmp_path / "features.npz"
    np.savez(path, image_ids=np.arange(500, 620), features=vectors.astype(np.float32), labels=labels, class_names=NAMES)
    return path


def nearest(index: Path, image_id: int, k: int) -> dict:
    return json.loads(
        ok("query", "vector", "--index", index, "--image-id", str(image_id), "-k", str(k), "--json").stdout
    )


@pytest.mark.parametrize(
    ("kind", "spec"),
    [("exact", "exact"), ("lsh", "lsh:n_bits=1,n_probes=1"), ("kmeans", "kmeans:n_probe=3")],
)
def test_indexes_that_score_everything_agree_with_exact(
    features_file: Path, tmp_path: Path, kind: str, spec: str
) -> None:
    exact, other = tmp_path / "exact.npz", tmp_path / f"{kind}.npz"
    ok("index", "build", "--spec", "exact", "--features", features_file, "--out", exact)
    built = ok("index", "build", "--spec", spec, "--features", features_file, "--out", other)
    assert f"{kind} index of 120 vectors (8 dims)" in built.stdout
    expected, got = nearest(exact, 500, 5), nearest(other, 500, 5)
    assert got["results"] == expected["results"]  # every vector is a candidate in these settings
    assert got["candidates"] == 120 and all(r["image_id"] != 500 for r in got["results"])
    assert {r["label"] for r in got["results"]} <= set(NAMES)


def test_kmeans_takes_the_classes_as_its_default_k(features_file: Path, tmp_path: Path) -> None:
    ok("index", "build", "--spec", "kmeans", "--features", features_file, "--out", tmp_path / "k.npz")
    assert load_index(tmp_path / "k.npz").n_lists == 3  # type: ignore[attr-defined]


def test_an_index_over_stored_embeddings(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    hasher = SemanticHasher(n_bits=8, epochs=1).fit(
        np.eye(3, dtype=np.float32), [0, 1, 2], np.eye(3), ["cat", "dog", "fish"]
    )
    hasher.save(tmp_path / "m.pt")
    model = register_model(engine, "m", hasher.n_bits, 3, hasher.get_params(), tmp_path / "m.pt")
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(40, 3)).astype(np.float32)
    encoded = EncodedImages(embeddings, pack_codes(rng.integers(0, 2, (40, 8))))
    store_hashes(engine, model, "pets", np.arange(40), encoded.embeddings, encoded.codes, ["cat"] * 40)
    engine.dispose()
    out = tmp_path / "pets.npz"
    ok("index", "build", "--spec", "exact", "--collection", "pets", "--model", "m", "--out", out, "--db", database_url)
    found = nearest(out, 0, 3)["results"]
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    expected = np.argsort(-(unit[1:] @ unit[0]), kind="stable")[:3] + 1
    assert [r["image_id"] for r in found] == expected.tolist() and found[0]["label"] == "cat"


def test_index_errors_are_clear(features_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "i.npz"
    both = semret("index", "build", "--spec", "exact", "--features", features_file, "--collection", "c", "--out", out)
    assert both.exit_code == 1 and "exactly one source" in both.stderr
    unknown = semret("index", "build", "--spec", "annoy", "--features", features_file, "--out", out)
    assert unknown.exit_code == 1 and "unknown index kind 'annoy'" in unknown.stderr
    wrong = semret("index", "build", "--spec", "lsh:n_clusters=3", "--features", features_file, "--out", out)
    assert wrong.exit_code == 1
    assert "index spec 'lsh:n_clusters=3' has no parameter n_clusters (its parameters: n_bits" in wrong.stderr
    bad = semret("index", "build", "--spec", "lsh:n_bits=80", "--features", features_file, "--out", out)
    assert bad.exit_code == 1 and "n_bits must be an integer between 1 and 64, got 80" in bad.stderr
    malformed = semret("index", "build", "--spec", "lsh:n_bits", "--features", features_file, "--out", out)
    assert malformed.exit_code == 1 and "is not NAME=VALUE" in malformed.stderr
    # checked before any work: a missing features file is not even opened
    early = semret("index", "build", "--spec", "lsh:bogus=3", "--features", tmp_path / "none.npz", "--out", out)
    assert early.exit_code == 1 and "no parameter bogus" in early.stderr
    ok("index", "build", "--spec", "exact", "--features", features_file, "--out", out)
    missing = semret("query", "vector", "--index", out, "--image-id", "1")
    assert missing.exit_code == 1 and "image 1 is not in the index" in missing.stderr
    (tmp_path / "junk.npz").write_bytes(b"junk")
    junk = semret("query", "vector", "--index", tmp_path / "junk.npz", "--image-id", "1")
    assert junk.exit_code == 1 and "not a readable semret vector index" in junk.stderr


@pytest.mark.parametrize(
    ("spec", "cls_name"),
    [
        ("neural-lsh:n_bits=16,n_tables=10,bits_per_table=8,epochs=3", "NeuralLSHIndex"),
        ("neural-lsh-knn:n_bits=4,n_tables=3,neighbours=4,epochs=2", "KnnNeuralLSHIndex"),
    ],
)
def test_the_neural_lsh_kinds_build_and_answer(features_file: Path, tmp_path: Path, spec: str, cls_name: str) -> None:
    out = tmp_path / "neural.npz"
    kind = spec.partition(":")[0]
    built = ok("index", "build", "--spec", spec, "--features", features_file, "--out", out)
    assert f"{kind} index of 120 vectors (8 dims)" in built.stdout
    index = load_index(out)
    assert type(index).__name__ == cls_name and index.kind == kind
    found = nearest(out, 500, 5)
    assert 0 < found["candidates"] <= 120 and all(r["image_id"] != 500 for r in found["results"])
    bad = semret(
        "index", "build", "--spec", "neural-lsh:n_bits=8,bits_per_table=12", "--features", features_file, "--out", out
    )
    assert bad.exit_code == 1 and "bits_per_table (12) must be at most n_bits (8)" in bad.stderr
