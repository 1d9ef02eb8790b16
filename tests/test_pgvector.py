"""Semantic-hash search inside PostgreSQL with pgvector (migration 0007, `semret.sql.pgvector_*`):
the exact scan gives the in-memory results (ties by id), the HNSW scan finds nearly all of them,
the copy follows the stored bytes through migrations, and without pgvector the bit_count path stays."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, text

from semret.core.codes import pack_codes, unpack_codes
from semret.core.hamming import HammingIndex
from semret.errors import SemretError
from semret.hashing.retrieval import HashQueries, SemanticHashIndex
from semret.sql import migrations, pgvector_store
from semret.sql.engine import make_engine
from semret.sql.hash_store import (
    SqlHammingSearcher,
    StoredModel,
    hamming_searcher,
    hash_searcher,
    register_model,
    store_hashes,
)
from semret.sql.pgvector_search import PgvectorHashSearcher
from semret.sql.pgvector_store import TABLE_NAME, hash_search_path, index_name

pytestmark = pytest.mark.postgres
DIM = 6


@pytest.fixture
def engine(pgvector_url: str) -> Iterator[Engine]:
    engine = make_engine(pgvector_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


def model(engine: Engine, tmp_path: Path, n_bits: int, name: str = "h") -> StoredModel:
    checkpoint = tmp_path / f"{name}.pt"
    checkpoint.write_bytes(name.encode())
    return register_model(engine, name, n_bits, DIM, {}, checkpoint)


def hashes(n: int, n_bits: int, free_bits: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, embeddings and codes; only ``free_bits`` bits vary (many equal Hamming distances) and
    every fifth embedding repeats the one before (equal cosines), so the tie order matters."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * n, size=n, replace=False)
    embeddings = rng.normal(size=(n, DIM)).astype(np.float32)
    embeddings[5::5] = embeddings[4::5][: len(embeddings[5::5])]
    bits = np.zeros((n, n_bits), dtype=np.uint8)
    bits[:, :free_bits] = rng.integers(0, 2, size=(n, free_bits))
    bits[:, -1] = 1  # the last bit counts too (a code's end is not padding)
    return ids, embeddings, pack_codes(bits)


@pytest.mark.parametrize("n_bits", [48, 100])
def test_the_exact_scan_gives_the_in_memory_results(engine: Engine, tmp_path: Path, n_bits: int) -> None:
    stored = model(engine, tmp_path, n_bits)
    ids, embeddings, codes = hashes(300, n_bits, 9, seed=n_bits)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    queries = HashQueries(embeddings[:12], codes[:12])
    for shortlist, k in ((None, 10), (7, 5), (400, 8)):
        memory = SemanticHashIndex(n_bits, DIM, "rerank", shortlist)
        memory.add(ids, embeddings, codes)
        searcher = hash_searcher(engine, stored, "shop", shortlist, scan="exact")
        assert isinstance(searcher, PgvectorHashSearcher) and searcher.ntotal == 300
        found = searcher.search(queries, k, exclude_ids=ids[:12])
        expected = memory.search(queries, k, exclude_ids=ids[:12])
        np.testing.assert_array_equal(found[1], expected[1])
        np.testing.assert_array_equal(found[0], expected[0])  # the same float32 cosines
    # the Hamming top-k alone, as the store's Hamming searcher (exact by default)
    hamming = hamming_searcher(engine, stored, "shop")
    assert isinstance(hamming, PgvectorHashSearcher)
    index = HammingIndex(n_bits)
    index.add(ids, codes)
    scores, found_ids = hamming.search(codes[:12], 15, exclude_ids=ids[:12])
    expected_scores, expected_ids = index.search(codes[:12], 15, exclude_ids=ids[:12])
    np.testing.assert_array_equal(found_ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("scan", ["exact", "approximate"])
def test_a_batch_split_over_connections_gives_the_same_results(engine: Engine, tmp_path: Path, scan: str) -> None:
    stored = model(engine, tmp_path, 48)
    ids, embeddings, codes = hashes(300, 48, 9, seed=3)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    queries = HashQueries(embeddings[:12], codes[:12])
    one = hash_searcher(engine, stored, "shop", scan=scan).search(queries, 8, exclude_ids=ids[:12])
    threads: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "unnest" in statement:
            threads.append(threading.current_thread().name)

    event.listen(engine, "before_cursor_execute", note)
    try:
        split = hash_searcher(engine, stored, "shop", scan=scan, connections=3).search(queries, 8, exclude_ids=ids[:12])
    finally:
        event.remove(engine, "before_cursor_execute", note)
    # three statements (one per connection's share), each run from the searcher's worker threads
    assert len(threads) == 3 and all(name.startswith("semret-pgvector") for name in threads)
    empty = hash_searcher(engine, stored, "shop", scan=scan, connections=3).search(
        HashQueries(embeddings[:0], codes[:0]), 8
    )
    assert empty[0].shape == (0, 8) and empty[1].shape == (0, 8)
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[0], one[0])
    with pytest.raises(SemretError, match="connections"):
        PgvectorHashSearcher(engine, stored, "shop", connections=0)


def test_the_hnsw_scan_uses_its_index_and_finds_the_neighbours(engine: Engine, tmp_path: Path) -> None:
    stored = model(engine, tmp_path, 32)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(20, DIM))
    labels = rng.integers(0, 20, 2000)
    embeddings = (centres[labels] + 0.3 * rng.normal(size=(2000, DIM))).astype(np.float32)
    planes = rng.normal(size=(DIM, 32))
    codes = pack_codes(embeddings @ planes > 0)  # codes that follow the embeddings, as a hash layer's
    ids = np.arange(2000)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    approximate = hash_searcher(engine, stored, "shop", scan="approximate")
    exact = hash_searcher(engine, stored, "shop", scan="exact")
    queries = HashQueries(embeddings[:40], codes[:40])
    _, found = approximate.search(queries, 10, exclude_ids=ids[:40])
    _, expected = exact.search(queries, 10, exclude_ids=ids[:40])
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, expected, strict=True)])
    assert recall >= 0.9
    assert isinstance(approximate, PgvectorHashSearcher) and isinstance(exact, PgvectorHashSearcher)
    name = index_name(stored.id, approximate._collection_id, 32)
    params = {
        "codes": ["0" * 32],
        "m": 20,
        "candidates": 80,
        "embeddings": ["[" + ",".join(["1"] * DIM) + "]"],
        "k": 10,
    }
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
        plan = "\n".join(conn.execute(text("EXPLAIN " + approximate.statement()), params).scalars())
    assert name in plan
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        plan = "\n".join(conn.execute(text("EXPLAIN " + exact.statement()), params).scalars())
    assert name not in plan and "Seq Scan" in plan


def test_the_copy_follows_the_stored_bytes_through_0007(engine: Engine, tmp_path: Path) -> None:
    stored = model(engine, tmp_path, 20)
    ids, embeddings, codes = hashes(50, 20, 20, seed=3)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)

    def copy() -> dict[int, tuple[str, list[float]]]:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT image_id, code::text, embedding::text FROM {TABLE_NAME}")).all()
        as_float32 = lambda vector: np.array(vector.strip("[]").split(","), dtype=np.float32).tolist()  # noqa: E731
        return {int(i): (code, as_float32(vector)) for i, code, vector in rows}

    expected = {
        int(i): ("".join(map(str, unpack_codes(codes[r : r + 1], 20)[0])), embeddings[r].tolist())
        for r, i in enumerate(ids)
    }
    assert copy() == expected
    with engine.connect() as conn:
        before = conn.execute(text("SELECT model_id, image_key, code, embedding FROM image_hashes ORDER BY 2")).all()
    migrations.downgrade(engine, "0006")
    assert "bit_count" in hash_search_path(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass(:t)"), {"t": TABLE_NAME}).scalar() is None
        assert (
            conn.execute(text("SELECT model_id, image_key, code, embedding FROM image_hashes ORDER BY 2")).all()
            == before
        )
    migrations.upgrade(engine)  # filled again from the bytes, and indexed
    assert copy() == expected
    assert "pgvector" in hash_search_path(engine)
    # a row deleted from image_hashes leaves the copy too; storing again writes nothing
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM image_hashes WHERE image_key = (SELECT min(image_key) FROM image_hashes)"))
    assert len(copy()) == 49
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    assert copy() == expected


def test_without_pgvector_the_bit_count_path_stays(
    postgres_url: str, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server without the extension, simulated: the migration cannot create it
    monkeypatch.setattr(pgvector_store, "create_extension", lambda conn: "simulated: no vector extension")
    for url in (postgres_url, sqlite_url):
        engine = make_engine(url)
        migrations.upgrade(engine)
        stored = model(engine, tmp_path, 48)
        ids, embeddings, codes = hashes(40, 48, 10, seed=1)
        store_hashes(engine, stored, "shop", ids, embeddings, codes)
        path = hash_search_path(engine)
        searcher = hamming_searcher(engine, stored, "shop")
        if engine.dialect.name == "postgresql":
            assert path.startswith("bit_count scan") and isinstance(searcher, SqlHammingSearcher)
        else:
            assert path.startswith("in memory") and isinstance(searcher, HammingIndex)
        assert isinstance(hash_searcher(engine, stored, "shop"), SemanticHashIndex)
        with pytest.raises(Exception, match="needs PostgreSQL with pgvector"):
            PgvectorHashSearcher(engine, stored, "shop")
        engine.dispose()


def test_concurrent_queries_share_the_pool(engine: Engine, tmp_path: Path) -> None:
    stored = model(engine, tmp_path, 48)
    ids, embeddings, codes = hashes(300, 48, 48, seed=5)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    searcher = hash_searcher(engine, stored, "shop", scan="exact")
    one_by_one = [searcher.search(HashQueries(embeddings[i : i + 1], codes[i : i + 1]), 5)[1] for i in range(40)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        together = list(
            pool.map(lambda i: searcher.search(HashQueries(embeddings[i : i + 1], codes[i : i + 1]), 5)[1], range(40))
        )
    for alone, concurrent in zip(one_by_one, together, strict=True):
        np.testing.assert_array_equal(alone, concurrent)
    assert engine.pool.size() == 10 and engine.pool.checkedout() == 0


def test_query_hash_in_the_database_says_where_it_ran(engine: Engine, tmp_path: Path) -> None:
    from semret.app.query import query_hash

    stored = model(engine, tmp_path, 48)
    ids, embeddings, codes = hashes(200, 48, 12, seed=9)
    store_hashes(engine, stored, "shop", ids, embeddings, codes)
    image = int(ids[3])
    memory = query_hash(engine, "shop", "h", image, "rerank", k=7)
    exact = query_hash(engine, "shop", "h", image, "rerank", k=7, in_db=True, scan="exact")
    approximate = query_hash(engine, "shop", "h", image, "rerank", k=7, in_db=True)
    hamming = query_hash(engine, "shop", "h", image, "hamming", k=7, in_db=True)
    assert (memory.search, exact.search, approximate.search) == (
        "memory",
        "pgvector, exact scan",
        "pgvector, HNSW index",
    )
    assert exact.results == memory.results and len(approximate.results) == 7
    assert hamming.search == "pgvector, exact scan"
    assert hamming.results == query_hash(engine, "shop", "h", image, "hamming", k=7).results
