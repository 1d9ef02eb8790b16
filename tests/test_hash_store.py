"""Hash models, embeddings and codes in the store, and Hamming top-k in the database, on SQLite and
PostgreSQL (where it runs inside the database: pgvector where the server has it, tests/test_pgvector.py,
else bit_count)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from semret.core.codes import pack_codes
from semret.core.hamming import HammingIndex
from semret.errors import SemretError
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.hasher import EncodedImages, SemanticHasher
from semret.sql import migrations
from semret.sql.bulk import MergeCounts
from semret.sql.engine import make_engine
from semret.sql.hash_store import (
    HASHES,
    SqlHammingSearcher,
    StoredModel,
    hamming_searcher,
    load_hashes,
    model_by_name,
    store_hashes,
)
from semret.sql.hash_store import register_model as register_plain
from semret.sql.pgvector_search import PgvectorHashSearcher
from semret.vision.hierarchy import ClassHierarchy

from helpers import FASHION_MNIST_LABELS

NAMES = FASHION_MNIST_LABELS


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def hasher(tmp_path_factory: pytest.TempPathFactory) -> tuple[SemanticHasher, Path]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 100)
    features = rng.normal(size=(100, 8)).astype(np.float32)
    targets = class_embeddings(ClassHierarchy.packaged("fashion-mnist"), NAMES)
    model = SemanticHasher(n_bits=48, epochs=1).fit(features, labels, targets, NAMES)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    model.save(path)
    return model, path


def register_model(engine: Engine, name: str, hasher: SemanticHasher, checkpoint: Path) -> StoredModel:
    """The store takes plain values: the model's size, parameters and checkpoint file."""
    return register_plain(
        engine, name, hasher.n_bits, int(hasher.class_embeddings_.shape[1]), hasher.get_params(), checkpoint
    )


def random_encoded(n: int, seed: int) -> EncodedImages:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, 10)).astype(np.float32)
    bits = rng.integers(0, 2, size=(n, 48))
    bits[:, 8:] = 0  # only 8 free bits: many equal distances, so the tie order matters
    return EncodedImages(embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True), pack_codes(bits))


def test_hashes_round_trip_and_storing_again_changes_nothing(engine: Engine, hasher: tuple) -> None:
    model = register_model(engine, "fm48", *hasher)
    ids = np.arange(100, 130)
    encoded = random_encoded(30, 1)
    labels = [NAMES[i % 10] for i in range(30)]
    assert store_hashes(engine, model, "shop", ids, *astuple(encoded), labels) == MergeCounts(30, 0, 0)
    assert store_hashes(engine, model, "shop", ids, *astuple(encoded), labels) == MergeCounts(0, 0, 0)
    stored = load_hashes(engine, model_by_name(engine, "fm48"), "shop")
    np.testing.assert_array_equal(stored.image_ids, ids)
    np.testing.assert_array_equal(stored.embeddings, encoded.embeddings)
    np.testing.assert_array_equal(stored.codes, encoded.codes)
    assert stored.labels == labels


def test_hamming_top_k_in_the_database_equals_memory(engine: Engine, hasher: tuple) -> None:
    model = register_model(engine, "fm48", *hasher)
    ids = np.random.default_rng(3).choice(10_000, size=200, replace=False)
    encoded = random_encoded(200, 2)
    store_hashes(engine, model, "shop", ids, *astuple(encoded))
    index = HammingIndex(48)
    index.add(ids, encoded.codes)
    searcher = hamming_searcher(engine, model, "shop")
    assert searcher.backend == ("postgresql" if engine.dialect.name == "postgresql" else "memory")
    # in PostgreSQL: pgvector's exact scan where the server has it, else bit_count
    assert isinstance(searcher, SqlHammingSearcher | PgvectorHashSearcher) == (engine.dialect.name == "postgresql")
    assert searcher.ntotal == 200
    for row in range(10):
        query_id = int(ids[row])
        scores, found = searcher.search(encoded.codes[row : row + 1], 12, exclude_ids=[query_id])
        expected_distances, expected_ids = index.search_distances(encoded.codes[row : row + 1], 13)
        keep = expected_ids[0] != query_id
        np.testing.assert_array_equal(found[0], expected_ids[0][keep][:12])
        np.testing.assert_array_equal(searcher.to_distance(scores)[0], expected_distances[0][keep][:12])
    # a batch at once equals the in-memory index, with k bounded by the collection
    scores, found = searcher.search(encoded.codes[:5], 10**12)
    expected_scores, expected_ids = index.search(encoded.codes[:5], 10**12)
    assert found.shape == (5, 200)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)


def test_a_new_checkpoint_under_the_same_name_drops_the_old_codes(
    engine: Engine, hasher: tuple, tmp_path: Path
) -> None:
    model = register_model(engine, "fm48", *hasher)
    store_hashes(engine, model, "shop", np.arange(5), *astuple(random_encoded(5, 4)))
    retrained = tmp_path / "retrained.pt"
    retrained.write_bytes(hasher[1].read_bytes() + b"")
    assert register_model(engine, "fm48", hasher[0], retrained).id == model.id  # same file: codes stay
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HASHES)).scalar_one() == 5
    other_seed = SemanticHasher(n_bits=48, epochs=1, seed=9).fit(
        np.ones((10, 8), dtype=np.float32), np.arange(10), hasher[0].class_embeddings_, NAMES
    )
    other_seed.save(retrained)
    register_model(engine, "fm48", other_seed, retrained)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HASHES)).scalar_one() == 0


def test_errors_name_what_is_missing(engine: Engine, hasher: tuple) -> None:
    with pytest.raises(SemretError, match=r"unknown hash model 'nope' \(models: none yet\)"):
        model_by_name(engine, "nope")
    model = register_model(engine, "fm48", *hasher)
    with pytest.raises(SemretError, match="unknown collection 'shop'"):
        load_hashes(engine, model, "shop")
    store_hashes(engine, model, "shop", np.arange(3), *astuple(random_encoded(3, 5)))
    with pytest.raises(SemretError, match="3 image ids but 2 encoded images"):
        store_hashes(engine, model, "shop", np.arange(3), *astuple(random_encoded(2, 5)))
    with pytest.raises(SemretError, match="k must be at least 1"):
        hamming_searcher(engine, model, "shop").search(random_encoded(1, 6).codes, 0)


def test_storing_hashes_is_one_transaction(engine: Engine, hasher: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    # the images and their hashes go in together or not at all
    model = register_model(engine, "fm48", *hasher)
    store_hashes(engine, model, "shop", np.arange(3), *astuple(random_encoded(3, 7)))

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("semret.sql.hash_store.stage_and_merge", fail)
    with pytest.raises(RuntimeError, match="disk is full"):
        store_hashes(engine, model, "shop", np.arange(10), *astuple(random_encoded(10, 8)))
    with engine.connect() as conn:
        from semret.sql.images_store import IMAGES

        assert conn.execute(select(func.count()).select_from(IMAGES)).scalar_one() == 3
