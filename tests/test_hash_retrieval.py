"""`CosineIndex` (exact cosine kNN, ties by id) and `SemanticHashIndex` (exact, Hamming and
Hamming shortlist + cosine re-rank): hand-computed cases, references, errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.core import cosine
from semret.core.codes import pack_codes
from semret.core.cosine import MISSING_SIMILARITY, CosineIndex, normalise
from semret.core.hamming import NO_ID, HammingIndex
from semret.errors import SemretError
from semret.hashing.retrieval import HashQueries, SemanticHashIndex

# --- CosineIndex -------------------------------------------------------------------------------


def test_cosine_search_hand_computed() -> None:
    index = CosineIndex(2)
    index.add([5, 2, 9, 4], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    similarities, ids = index.search([[3.0, 0.0], [0.0, -1.0]], 3)
    assert similarities.dtype == np.float32 and ids.dtype == np.int64
    # Ids 4 and 5 point the same way (similarity 1): the smaller id first.
    assert ids.tolist() == [[4, 5, 9], [4, 5, 9]]
    np.testing.assert_array_equal(similarities[0], np.array([1.0, 1.0, np.sqrt(0.5)], dtype=np.float32))
    np.testing.assert_array_equal(similarities[1], np.array([0.0, 0.0, -np.sqrt(0.5)], dtype=np.float32))
    np.testing.assert_allclose(np.linalg.norm(index.vectors(), axis=1), 1.0, rtol=1e-6)
    assert index.ids.tolist() == [2, 4, 5, 9]


def test_cosine_rows_are_bounded_by_the_index_and_padded_by_exclusion() -> None:
    index = CosineIndex(3)
    index.add([7], [[0.0, 0.0, 2.0]])
    similarities, ids = index.search([[0.0, 1.0, 1.0]], 3)
    assert ids.tolist() == [[7]]  # min(k, ntotal) columns
    assert similarities[0, 0] == np.float32(np.sqrt(0.5))
    similarities, ids = index.search([[0.0, 1.0, 1.0]], 3, exclude_ids=[7])
    assert ids.tolist() == [[NO_ID]]
    assert similarities[0].tolist() == [MISSING_SIMILARITY]


def reference_cosine(
    index: CosineIndex, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """By the definition: float32 of the float64 dot products of the stored unit vectors, sorted
    by (similarity descending, id ascending); ``allowed`` restricts each query to some ids; min(k,
    ntotal) columns, padded where fewer are allowed."""
    k = min(k, index.ntotal)
    vectors, ids = index.vectors().astype(np.float64), index.ids
    unit = normalise(queries, index.dim).astype(np.float64)
    scores = np.full((len(queries), k), MISSING_SIMILARITY, dtype=np.float32)
    found = np.full((len(queries), k), NO_ID, dtype=np.int64)
    for row, query in enumerate(unit):
        similarities = (vectors * query).sum(axis=1).astype(np.float32)
        keep = np.ones(len(ids), dtype=bool) if allowed is None else np.isin(ids, allowed[row])
        order = np.lexsort((ids[keep], -similarities[keep]))[:k]
        scores[row, : len(order)] = similarities[keep][order]
        found[row, : len(order)] = ids[keep][order]
    return scores, found


@contextmanager
def small_products(area: int) -> Iterator[None]:
    """Small query blocks and exact pieces, so that small indexes take the blocked paths."""
    with mock.patch.object(cosine, "_PRODUCT_AREA", area), mock.patch.object(cosine, "_EXACT_AREA", area):
        yield


@st.composite
def cosine_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    dim = draw(st.sampled_from([1, 2, 3, 16, 100]))
    n = draw(st.integers(1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # small integer vectors from a small pool: many exact ties
        pool = rng.integers(-2, 3, size=(draw(st.integers(1, 6)), dim)).astype(np.float32)
        pool[np.abs(pool).sum(axis=1) == 0, 0] = 1.0
        vectors = pool[rng.integers(0, len(pool), size=n)] * rng.integers(1, 4, size=(n, 1))
    else:
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
    ids = rng.choice(10 * n, size=n, replace=False)
    queries = np.concatenate([vectors[:2], rng.standard_normal((draw(st.integers(0, 4)), dim))])
    return ids, vectors, queries, draw(st.integers(1, n + 2)), draw(st.sampled_from([1, 7, 100, 1 << 25]))


@settings(max_examples=200, deadline=None)
@given(cosine_cases())
def test_cosine_index_equals_the_definition(case: tuple) -> None:
    ids, vectors, queries, k, area = case
    with small_products(area):
        index = CosineIndex(vectors.shape[1])
        index.add(ids[::2], vectors[::2])
        index.add(ids[1::2], vectors[1::2])
        similarities, found = index.search(queries, k)
    expected_similarities, expected_ids = reference_cosine(index, queries, k)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_array_equal(similarities, expected_similarities)


def test_cosine_index_on_a_larger_random_index() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((20_000, 100)).astype(np.float32)
    vectors[100:200] = vectors[0]  # exact duplicates: ties
    index = CosineIndex(100)
    index.add(rng.permutation(20_000), vectors)
    queries = np.concatenate([vectors[:2], rng.standard_normal((30, 100))])
    similarities, found = index.search(queries, 250)
    expected_similarities, expected_ids = reference_cosine(index, queries, 250)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_array_equal(similarities, expected_similarities)
    # Against plain float64 arithmetic: the same ranking up to float32 rounding.
    unit = vectors / np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    query = queries[5] / np.linalg.norm(queries[5].astype(np.float64))
    np.testing.assert_allclose(similarities[5], np.sort(unit @ query)[::-1][:250], atol=1e-6)


def test_search_subset_ranks_only_the_candidates() -> None:
    index = CosineIndex(2)
    index.add([5, 2, 9, 4], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    similarities, ids = index.search_subset([[1.0, 0.0], [1.0, 0.0]], [[2, 9, NO_ID], [NO_ID, NO_ID, NO_ID]], 3)
    assert ids.tolist() == [[9, 2, NO_ID], [NO_ID] * 3]
    np.testing.assert_array_equal(similarities[0, :2], np.array([np.sqrt(0.5), 0.0], dtype=np.float32))
    # Ties among candidates go by id, whatever order the candidates come in.
    _, ids = index.search_subset([[1.0, 0.0]], [[9, 5, 4]], 2)
    assert ids.tolist() == [[4, 5]]
    with pytest.raises(SemretError, match=r"not in the index: \[3\]"):
        index.search_subset([[1.0, 0.0]], [[3, 5]], 1)
    with pytest.raises(SemretError, match="same id twice"):
        index.search_subset([[1.0, 0.0]], [[5, 5]], 1)
    with pytest.raises(SemretError, match="one row per query"):
        index.search_subset([[1.0, 0.0]], [[5], [4]], 1)


@settings(max_examples=100, deadline=None)
@given(cosine_cases(), st.integers(0, 2**32 - 1))
def test_search_subset_equals_the_definition(case: tuple, seed: int) -> None:
    ids, vectors, queries, k, _ = case
    index = CosineIndex(vectors.shape[1])
    index.add(ids, vectors)
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, len(ids) + 1))
    candidates = np.stack([rng.permutation(ids)[:m] for _ in queries])
    candidates[rng.random(candidates.shape) < 0.2] = NO_ID
    similarities, found = index.search_subset(queries, candidates, k)
    expected_similarities, expected_ids = reference_cosine(index, queries, k, allowed=candidates)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_array_equal(similarities, expected_similarities)
    # All ids as candidates: the same as the exhaustive search.
    everything = np.tile(rng.permutation(ids), (len(queries), 1))
    for a, b in zip(index.search_subset(queries, everything, k), index.search(queries, k), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cosine_index_errors() -> None:
    index = CosineIndex(3)
    with pytest.raises(SemretError, match="empty"):
        index.search([[1.0, 0.0, 0.0]], 1)
    with pytest.raises(SemretError, match=r"vectors \[1\] are zero"):
        index.add([1, 2], [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(SemretError, match="NaN"):
        index.add([1], [[1.0, np.nan, 0.0]])
    with pytest.raises(SemretError, match="NaN or infinite"):
        index.add([1], [[1.0, np.inf, 0.0]])
    with pytest.raises(SemretError, match=r"\(n, 3\)"):
        index.add([1], [[1.0, 0.0]])
    with pytest.raises(SemretError, match="duplicate ids"):
        index.add([1, 1], np.eye(3)[:2])
    index.add([1, 2], np.eye(3)[:2])
    with pytest.raises(SemretError, match="already in the index"):
        index.add([2], np.eye(3)[:1])
    assert index.ntotal == 2
    with pytest.raises(SemretError, match=r"queries \[0\] are zero"):
        index.search([[0.0, 0.0, 0.0]], 1)
    with pytest.raises(SemretError, match="queries must be a 2-d"):
        index.search([1.0, 0.0, 0.0], 1)
    with pytest.raises(SemretError, match="k must be at least 1"):
        index.search([[1.0, 0.0, 0.0]], 0)
    with pytest.raises(SemretError, match="positive integer"):
        CosineIndex(0)


# --- SemanticHashIndex ------------------------------------------------------------------------


def hand_index(mode: str, shortlist: int | None = None) -> SemanticHashIndex:
    """Query code 0x00 and embedding (1, 0) against four images:

    id 0: code 0x00 (distance 0), embedding (0, 1)     cosine 0
    id 1: code 0x01 (distance 1), embedding (1, 1)     cosine 0.707
    id 2: code 0x02 (distance 1), embedding (1, 0)     cosine 1
    id 3: code 0xff (distance 8), embedding (1, 0.01)  cosine 0.99995
    """
    index = SemanticHashIndex(8, 2, mode=mode, shortlist=shortlist)  # type: ignore[arg-type]
    index.add(
        [2, 0, 3, 1],
        [[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [1.0, 1.0]],
        np.array([[0x02], [0x00], [0xFF], [0x01]], dtype=np.uint8),
    )
    return index


QUERY_EMBEDDING = np.array([[1.0, 0.0]])
QUERY_CODE = np.array([[0x00]], dtype=np.uint8)


def test_three_modes_hand_computed() -> None:
    scores, ids = hand_index("exact").search(HashQueries(QUERY_EMBEDDING, None), 2)
    assert ids.tolist() == [[2, 3]]
    assert scores[0, 0] == 1.0
    scores, ids = hand_index("hamming").search(HashQueries(None, QUERY_CODE), 3)
    assert ids.tolist() == [[0, 1, 2]]
    assert scores.dtype == np.float32 and scores.tolist() == [[-0.0, -1.0, -1.0]]
    # k = 1, shortlist 2: ids 1 and 2 tie at distance 1 for the second place; id 1 wins the tie, so
    # the shortlist is {0, 1} and the best of those by cosine is id 1, not the exact best (2).
    scores, ids = hand_index("rerank", shortlist=2).search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 1)
    assert ids.tolist() == [[1]]
    assert scores[0, 0] == np.float32(np.sqrt(0.5))
    # The default shortlist is 2k: k = 1 gives the same; k = 2 shortlists all four, as exact.
    assert hand_index("rerank").search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 1)[1].tolist() == [[1]]
    assert hand_index("rerank").search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 2)[1].tolist() == [[2, 3]]
    # Shortlist 3 is {0, 1, 2}: id 3 (cosine 0.99995, but 8 bits away) stays out.
    assert hand_index("rerank", shortlist=3).search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 2)[1].tolist() == [[2, 1]]


def test_rows_are_bounded_and_padded_in_every_mode() -> None:
    for mode in ("exact", "hamming", "rerank"):
        index = hand_index(mode, shortlist=None)
        scores, ids = index.search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 6)
        assert ids.shape == (1, 4) and NO_ID not in ids  # min(k, ntotal) columns
        scores, ids = index.search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 6, exclude_ids=[2])
        assert ids.shape == (1, 4) and 2 not in ids
        assert ids[0, 3:].tolist() == [NO_ID]
        assert scores[0, 3:].tolist() == [MISSING_SIMILARITY]


def random_collection(seed: int, n: int, n_bits: int = 16, dim: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2, size=(5, n_bits))  # few distinct codes: many equal distances
    codes = pack_codes(pool[rng.integers(0, 5, size=n)] ^ (rng.random((n, n_bits)) < 0.1))
    embeddings = rng.standard_normal((n, dim)).astype(np.float32)
    embeddings[: n // 5] = embeddings[0]  # and some equal embeddings
    return rng.choice(5 * n, size=n, replace=False), embeddings, codes


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 150), st.integers(1, 20))
def test_rerank_with_a_full_shortlist_equals_exact(seed: int, n: int, k: int) -> None:
    ids, embeddings, codes = random_collection(seed, n)
    rng = np.random.default_rng(seed)
    own = rng.integers(0, n, size=3)
    query_embeddings = np.concatenate([embeddings[own], rng.standard_normal((3, 8))])
    query_codes = codes[np.concatenate([own, rng.integers(0, n, size=3)])]
    exact = SemanticHashIndex(16, 8, mode="exact")
    rerank = SemanticHashIndex(16, 8, mode="rerank", shortlist=max(n, k))
    for index in (exact, rerank):
        index.add(ids, embeddings, codes)
    for a, b in zip(
        exact.search(HashQueries(query_embeddings, query_codes), k),
        rerank.search(HashQueries(query_embeddings, query_codes), k),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_modes_match_their_parts() -> None:
    ids, embeddings, codes = random_collection(1, 3_000, n_bits=48, dim=32)
    rng = np.random.default_rng(2)
    query_embeddings = rng.standard_normal((20, 32))
    query_codes = codes[rng.integers(0, 3_000, size=20)]
    hamming_index = HammingIndex(48)
    hamming_index.add(ids, codes)
    cosine_index = CosineIndex(32)
    cosine_index.add(ids, embeddings)
    index = SemanticHashIndex(48, 32)
    index.add(ids, embeddings, codes)
    assert index.ntotal == 3_000
    k = 25

    index.mode = "exact"
    for a, b in zip(
        index.search(HashQueries(query_embeddings, None), k), cosine_index.search(query_embeddings, k), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    index.mode = "hamming"
    scores, found = index.search(HashQueries(None, query_codes), k)
    distances, expected_ids = hamming_index.search_distances(query_codes, k)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_array_equal(scores, -distances.astype(np.float32))
    index.mode = "rerank"
    for m in (None, 25, 80):
        index.shortlist = m
        shortlist_ids = hamming_index.search_distances(query_codes, m or 2 * k)[1]
        expected = cosine_index.search_subset(query_embeddings, shortlist_ids, k)
        for a, b in zip(index.search(HashQueries(query_embeddings, query_codes), k), expected, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", ["ivf:nlist=16,nprobe=3", "multihash:b=16,nflip=1,nhash=3"])
def test_approximate_hamming_shortlists_match_their_parts(spec: str) -> None:
    ids, embeddings, codes = random_collection(3, 3_000, n_bits=48, dim=32)
    rng = np.random.default_rng(4)
    query_embeddings = rng.standard_normal((20, 32))
    query_codes = codes[rng.integers(0, 3_000, size=20)]
    hamming_index = HammingIndex.from_spec(spec, 48, n_threads=1)  # one thread: quick on busy cores
    hamming_index.add(ids, codes)
    cosine_index = CosineIndex(32)
    cosine_index.add(ids, embeddings)
    index = SemanticHashIndex(48, 32, hamming=spec, n_threads=1)
    index.add(ids[:1_000], embeddings[:1_000], codes[:1_000])
    index.add(ids[1_000:], embeddings[1_000:], codes[1_000:])
    assert index.hamming.spec == spec and f"hamming={spec!r}" in repr(index)
    k = 10
    shortlist_ids = hamming_index.search_distances(query_codes, 2 * k)[1]
    expected = cosine_index.search_subset(query_embeddings, shortlist_ids, k)
    for a, b in zip(index.search(HashQueries(query_embeddings, query_codes), k), expected, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(index.last_candidates, (shortlist_ids != NO_ID).sum(axis=1))
    index.mode = "hamming"
    for a, b in zip(index.search(HashQueries(None, query_codes), k), hamming_index.search(query_codes, k), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(SemretError, match="unknown Hamming index kind"):
        SemanticHashIndex(48, 32, hamming="lsh")


def test_semantic_hash_index_errors() -> None:
    with pytest.raises(SemretError, match="unknown retrieval mode"):
        SemanticHashIndex(8, 2, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(SemretError, match="shortlist must be at least 1"):  # named, not a derived k
        SemanticHashIndex(8, 2, shortlist=0)
    index = SemanticHashIndex(8, 2, shortlist=1)
    with pytest.raises(SemretError, match="empty"):
        index.search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 1)
    with pytest.raises(SemretError, match="got 2 embeddings and 1 codes"):
        index.add([1], [[1.0, 0.0], [0.0, 1.0]], QUERY_CODE)
    with pytest.raises(SemretError, match="are zero"):
        index.add([1], [[0.0, 0.0]], QUERY_CODE)
    with pytest.raises(SemretError, match=r"\(n, 2\) array"):
        index.add([1], [1.0, 0.0], QUERY_CODE)
    with pytest.raises(SemretError, match="1 bytes per code"):
        index.add([1], [[1.0, 0.0]], np.zeros((1, 2), dtype=np.uint8))
    index.add([1], [[1.0, 0.0]], QUERY_CODE)
    with pytest.raises(SemretError, match="already in the index"):
        index.add([1], [[1.0, 0.0]], QUERY_CODE)
    assert index.ntotal == 1 and index.cosine.ntotal == 1
    index.add([2], [[0.0, 1.0]], QUERY_CODE)
    with pytest.raises(SemretError, match="shortlist \\(1\\) must be at least k \\(2\\)"):
        index.search(HashQueries(QUERY_EMBEDDING, QUERY_CODE), 2)
    with pytest.raises(SemretError, match="needs query codes"):
        index.search(HashQueries(QUERY_EMBEDDING, None), 1)
    with pytest.raises(SemretError, match="needs query embeddings"):
        index.search(HashQueries(None, QUERY_CODE), 1)
    with pytest.raises(SemretError, match="got 2 query embeddings and 1 query codes"):
        index.search(HashQueries([[1.0, 0.0], [0.0, 1.0]], QUERY_CODE), 1)
    with pytest.raises(SemretError, match="NaN"):
        index.search(HashQueries([[np.nan, 0.0]], QUERY_CODE), 1)
    index.reset()
    assert index.ntotal == 0 and index.cosine.ntotal == 0
