"""Binary codes (packing, thresholds, the int64 form) and `HammingIndex`: hand-computed cases, a
brute-force reference and the numpy kernel (ids and distances exactly, ties by id, also at the
k-th place), agreement with raw faiss, the approximate kinds (ivf, multihash), errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import faiss
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.core import hamming, hamming_numpy
from semret.core.codes import (
    code_bytes,
    codes_from_activations,
    codes_to_int64,
    int64_to_codes,
    pack_codes,
    unpack_codes,
)
from semret.core.hamming import MISSING_DISTANCE, NO_ID, HammingIndex
from semret.core.hamming_numpy import NumpyHammingKernel
from semret.errors import SemretError

# --- codes -------------------------------------------------------------------------------------


def test_pack_codes_is_big_endian_with_zero_padding() -> None:
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]])
    packed = pack_codes(bits)
    assert packed.dtype == np.uint8
    # byte 0: bits 0..7 (first bit = 0x80); byte 1: bits 8..10 in its top three bits, then zeros.
    np.testing.assert_array_equal(packed, [[0b1000_0001, 0b1010_0000], [0, 0b0010_0000]])
    np.testing.assert_array_equal(unpack_codes(packed, 11), bits)
    np.testing.assert_array_equal(pack_codes(bits.astype(bool)), packed)
    np.testing.assert_array_equal(pack_codes(bits.astype(np.float32)), packed)


@pytest.mark.parametrize("n_bits", [1, 7, 8, 13, 48, 64, 65, 100])
def test_pack_unpack_round_trip(n_bits: int) -> None:
    bits = np.random.default_rng(n_bits).integers(0, 2, size=(50, n_bits)).astype(np.uint8)
    packed = pack_codes(bits)
    assert packed.shape == (50, code_bytes(n_bits))
    np.testing.assert_array_equal(unpack_codes(packed, n_bits), bits)
    np.testing.assert_array_equal(np.packbits(bits, axis=1), packed)  # the layout faiss reads too


def test_pack_codes_rejects_bad_input() -> None:
    with pytest.raises(SemretError, match="only 0 and 1"):
        pack_codes([[0, 2, 1]])
    with pytest.raises(SemretError, match="only 0 and 1"):
        pack_codes([[0.0, np.nan]])
    with pytest.raises(SemretError, match="2-d"):
        pack_codes([0, 1, 1])
    with pytest.raises(SemretError, match="at least one bit"):
        pack_codes(np.zeros((3, 0)))
    with pytest.raises(SemretError, match="dtype"):
        pack_codes([["0", "1"]])
    assert pack_codes(np.zeros((0, 48))).shape == (0, 6)


def test_codes_from_activations_thresholds_at_one_half() -> None:
    activations = np.array([[0.2, 0.5, 0.51, 0.9, 0.0, 1.0, 0.49, 0.7, 0.6]])
    expected = pack_codes([[0, 0, 1, 1, 0, 1, 0, 1, 1]])
    np.testing.assert_array_equal(codes_from_activations(activations), expected)
    np.testing.assert_array_equal(codes_from_activations(torch.tensor(activations)), expected)
    np.testing.assert_array_equal(
        codes_from_activations(activations, threshold=0.8), pack_codes([[0] * 3 + [1, 0, 1] + [0] * 3])
    )
    assert codes_from_activations(np.empty((0, 48))).shape == (0, 6)
    with pytest.raises(SemretError, match="NaN"):
        codes_from_activations([[0.1, np.nan]])
    with pytest.raises(SemretError, match="2-d"):
        codes_from_activations([0.1, 0.9])


def test_int64_form_hand_computed() -> None:
    first_bit = np.zeros((1, 13), dtype=np.uint8)
    first_bit[0, 0] = 1
    assert codes_to_int64(pack_codes(first_bit), 13).tolist() == [4096]
    last_bit = np.zeros((1, 13), dtype=np.uint8)
    last_bit[0, -1] = 1
    assert codes_to_int64(pack_codes(last_bit), 13).tolist() == [1]
    assert codes_to_int64(pack_codes(np.ones((1, 48))), 48).tolist() == [2**48 - 1]
    top = np.zeros((1, 64), dtype=np.uint8)
    top[0, 0] = 1
    assert codes_to_int64(pack_codes(top), 64).tolist() == [-(2**63)]  # bit 63 is the sign bit
    assert codes_to_int64(pack_codes(np.ones((1, 64))), 64).tolist() == [-1]
    assert codes_to_int64(np.zeros((0, 6), dtype=np.uint8), 48).dtype == np.int64


@pytest.mark.parametrize("n_bits", [1, 13, 48, 63, 64])
def test_int64_round_trip(n_bits: int) -> None:
    bits = np.random.default_rng(n_bits).integers(0, 2, size=(200, n_bits)).astype(np.uint8)
    bits[0] = 1
    bits[1] = 0
    packed = pack_codes(bits)
    values = codes_to_int64(packed, n_bits)
    assert values.dtype == np.int64
    as_unsigned = [sum(int(b) << (n_bits - 1 - i) for i, b in enumerate(row)) for row in bits]
    assert values.view(np.uint64).tolist() == as_unsigned
    if n_bits < 64:
        assert values.min() >= 0
    np.testing.assert_array_equal(int64_to_codes(values, n_bits), packed)
    np.testing.assert_array_equal(int64_to_codes(values.tolist(), n_bits), packed)


def test_int64_form_rejects_bad_input() -> None:
    with pytest.raises(SemretError, match="1 to 64 bits"):
        codes_to_int64(np.zeros((1, 9), dtype=np.uint8), 65)
    with pytest.raises(SemretError, match=r"\[0, 2\*\*13\)"):
        int64_to_codes([8192], 13)
    with pytest.raises(SemretError, match=r"\[0, 2\*\*13\)"):
        int64_to_codes([-1], 13)
    with pytest.raises(SemretError, match="integers"):
        int64_to_codes([1.5], 13)
    with pytest.raises(SemretError, match="1 to 64 bits"):
        int64_to_codes([1], 0)


def test_packed_codes_are_checked() -> None:
    with pytest.raises(SemretError, match="2 bytes per code"):
        unpack_codes(np.zeros((1, 3), dtype=np.uint8), 13)
    with pytest.raises(SemretError, match="uint8"):
        unpack_codes(np.zeros((1, 2), dtype=np.int64), 13)
    with pytest.raises(SemretError, match="padding bits"):
        unpack_codes(np.array([[0, 0b0000_0100]], dtype=np.uint8), 13)
    with pytest.raises(SemretError, match="positive integer"):
        code_bytes(0)


# --- HammingIndex: hand-computed --------------------------------------------------------------


def byte_codes(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint8)[:, None]


def test_hamming_search_hand_computed() -> None:
    index = HammingIndex(8)
    index.add([10, 3, 7, 5], byte_codes(0b0000_0000, 0b0000_0011, 0b0000_0001, 0b1111_1111))
    distances, ids = index.search_distances(byte_codes(0), 3)
    assert distances.dtype == np.int32 and ids.dtype == np.int64
    assert distances.tolist() == [[0, 1, 2]]
    assert ids.tolist() == [[10, 7, 3]]
    # Id 1 ties with id 7 at distance 1: the smaller id comes first, and it pushes id 3 out.
    index.add([1], byte_codes(0b0000_0010))
    distances, ids = index.search_distances(byte_codes(0, 0b1111_1111), 3)
    assert distances.tolist() == [[0, 1, 1], [0, 6, 7]]
    assert ids.tolist() == [[10, 1, 7], [5, 3, 1]]
    assert index.ntotal == 5
    assert index.ids.tolist() == [1, 3, 5, 7, 10]


def test_ties_at_the_kth_place_go_to_the_smallest_ids() -> None:
    index = HammingIndex(13)
    codes = pack_codes(np.zeros((6, 13)))
    index.add([50, 4, 30, 8, 16, 2], codes)
    distances, ids = index.search_distances(codes[:1], 4)
    assert distances.tolist() == [[0, 0, 0, 0]]
    assert ids.tolist() == [[2, 4, 8, 16]]


def test_results_are_bounded_by_the_index() -> None:
    # The search contract: min(k, ntotal) columns, so a huge k costs no memory.
    index = HammingIndex(8)
    index.add([4, 2], byte_codes(1, 3))
    distances, ids = index.search_distances(byte_codes(0), 4)
    assert ids.tolist() == [[4, 2]]
    assert distances.tolist() == [[1, 2]]
    assert index.search_distances(np.zeros((0, 1), dtype=np.uint8), 3)[1].shape == (0, 2)
    scores, ids = index.search(byte_codes(0), 10**18)
    assert ids.tolist() == [[4, 2]] and scores.tolist() == [[-1.0, -2.0]]


def test_search_contract_scores_are_minus_distances_and_exclusion_drops_ids() -> None:
    index = HammingIndex(8)
    index.add([10, 3, 7, 5], byte_codes(0b0000_0000, 0b0000_0011, 0b0000_0001, 0b1111_1111))
    scores, ids = index.search(byte_codes(0, 0b1111_1111), 2, exclude_ids=[10, NO_ID])
    assert scores.dtype == np.float32
    assert ids.tolist() == [[7, 3], [5, 3]]
    assert scores.tolist() == [[-1.0, -2.0], [0.0, -6.0]]
    assert index.to_distance(scores).tolist() == [[1, 2], [0, 6]]
    assert index.to_distance([[-np.inf]]).tolist() == [[MISSING_DISTANCE]]
    padded = np.array([[-3.0, -np.inf]], dtype=np.float32)  # as searches return them
    assert index.to_distance(padded).tolist() == [[3, MISSING_DISTANCE]]
    # several ids per query
    _, ids = index.search(byte_codes(0), 4, exclude_ids=[[10, 7]])
    assert ids.tolist() == [[3, 5, NO_ID, NO_ID]]


# --- HammingIndex: reference -------------------------------------------------------------------


def reference_search(
    ids: np.ndarray, codes: np.ndarray, queries: np.ndarray, n_bits: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: every distance from the unpacked bits, sorted by (distance, id); min(k, n)
    columns, as the search contract bounds them."""
    k = min(k, len(ids))
    bits = unpack_codes(codes, n_bits).astype(np.int64)
    query_bits = unpack_codes(queries, n_bits).astype(np.int64)
    distances = np.full((len(queries), k), MISSING_DISTANCE, dtype=np.int32)
    result = np.full((len(queries), k), NO_ID, dtype=np.int64)
    for row, query in enumerate(query_bits):
        d = (bits != query).sum(axis=1)
        order = np.lexsort((ids, d))[:k]
        distances[row, : len(order)] = d[order]
        result[row, : len(order)] = ids[order]
    return distances, result


def true_distances(index: HammingIndex, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The Hamming distance of each (query, returned id) from the unpacked bits; padding -> 2**31 - 1."""
    bits = unpack_codes(index.codes(), index.n_bits).astype(np.int64)
    query_bits = unpack_codes(queries, index.n_bits).astype(np.int64)
    at = np.searchsorted(index.ids, np.where(ids == NO_ID, 0, ids))
    d = (bits[at] != query_bits[:, None, :]).sum(axis=2)
    return np.where(ids == NO_ID, MISSING_DISTANCE, d)


@contextmanager
def small_chunks(chunk: int, area: int) -> Iterator[None]:
    """Tiny chunks and blocks for the numpy kernel, so that small indexes take every path."""
    with mock.patch.object(hamming_numpy, "_CHUNK", chunk), mock.patch.object(hamming_numpy, "_BLOCK_AREA", area):
        yield


@st.composite
def hamming_cases(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    # Small codes (4 to 8 bits) tie by the hundreds; the k-th place is then almost always a tie.
    n_bits = draw(st.sampled_from([1, 4, 5, 6, 8, 13, 48, 64, 65, 130, 300]))
    n = draw(st.integers(1, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Codes from a small pool (and near-copies), so that equal distances are common.
    pool = rng.integers(0, 2, size=(draw(st.integers(1, 8)), n_bits))
    bits = pool[rng.integers(0, len(pool), size=n)]
    flips = rng.random(bits.shape) < draw(st.sampled_from([0.0, 0.05, 0.5]))
    codes = pack_codes(bits ^ flips)
    ids = rng.choice(10 * n + 10, size=n, replace=False).astype(np.int64)
    # Up to 70 queries, on faiss' threads.
    extra = rng.integers(0, 2, size=(draw(st.sampled_from([0, 3, 70])), n_bits))
    queries = pack_codes(np.concatenate([pool[:2], extra]))
    k = draw(st.integers(1, n + 3))
    return n_bits, ids, codes, queries, k, draw(st.sampled_from([1, 2, 3, 7, 64])), draw(st.sampled_from([1, 2]))


@settings(max_examples=200, deadline=None)
@given(hamming_cases())
def test_hamming_index_equals_brute_force(case: tuple) -> None:
    n_bits, ids, codes, queries, k, chunk, threads = case
    expected = reference_search(ids, codes, queries, n_bits, k)
    index = HammingIndex(n_bits, n_threads=threads)
    half = len(ids) // 2
    index.add(ids[half:], codes[half:])  # two batches, ids not ascending
    index.add(ids[:half], codes[:half])
    distances, found = index.search_distances(queries, k)
    np.testing.assert_array_equal(found, expected[1])
    np.testing.assert_array_equal(distances, expected[0])
    distances, positions = index.search_positions(queries, k)
    np.testing.assert_array_equal(index.ids[positions], expected[1])
    # The numpy kernel (the reference kept from before faiss): the same, by positions in id order.
    with small_chunks(chunk, area=max(chunk, 3 * chunk)):
        kernel = NumpyHammingKernel(index.codes(), n_bits, n_threads=threads)
        kernel_distances, kernel_positions = kernel.search_positions(queries, k)
    np.testing.assert_array_equal(kernel_positions, positions)
    np.testing.assert_array_equal(kernel_distances, expected[0])


@pytest.mark.parametrize("seed", range(4))
def test_hamming_index_equals_brute_force_on_larger_random_indexes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_bits = [48, 13, 64, 100][seed]
    n = 3_000
    codes = pack_codes(rng.integers(0, 2, size=(n, n_bits)))
    codes[: n // 4] = codes[0]  # a quarter are copies: heavy ties at distance 0
    ids = rng.permutation(5 * n)[:n]
    queries = np.concatenate([codes[:3], pack_codes(rng.integers(0, 2, size=(40, n_bits)))])
    index = HammingIndex(n_bits)
    index.add(ids, codes)
    for k, chunk in ((1, 512), (250, 512), (1000, 256), (2_999, 1 << 14)):
        distances, found = index.search_distances(queries, k)
        expected_distances, expected_ids = reference_search(ids, codes, queries, n_bits, k)
        np.testing.assert_array_equal(found, expected_ids)
        np.testing.assert_array_equal(distances, expected_distances)
        with small_chunks(chunk, area=4 * chunk):
            kernel_distances, kernel_positions = NumpyHammingKernel(index.codes(), n_bits).search_positions(queries, k)
        np.testing.assert_array_equal(index.ids[kernel_positions], expected_ids)
        np.testing.assert_array_equal(kernel_distances, expected_distances)


def test_ties_across_faiss_database_blocks_and_threads() -> None:
    # faiss scans the codes in blocks of 65,536 and the queries in batches on its threads: 4-bit
    # codes (16 values) over 140,000 ids, so every row is all ties, across block boundaries.
    rng = np.random.default_rng(4)
    n, n_bits = 140_000, 4
    codes = pack_codes(rng.integers(0, 2, size=(n, n_bits)))
    ids = rng.permutation(3 * n)[:n]
    queries = pack_codes(rng.integers(0, 2, size=(70, n_bits)))
    results = []
    for threads, batch in ((1, 4096), (2, 4096), (2, 32)):
        with mock.patch.object(hamming, "QUERY_BATCH", batch):  # and faiss' default query batch
            index = HammingIndex(n_bits, n_threads=threads)
        index.add(ids, codes)
        results.append(index.search_positions(queries, 9_000))  # k-th place deep in the ties
    kernel = NumpyHammingKernel(index.codes(), n_bits)
    expected_distances, expected_positions = kernel.search_positions(queries, 9_000)
    for distances, positions in results:
        np.testing.assert_array_equal(positions, expected_positions)
        np.testing.assert_array_equal(distances, expected_distances)
    # Spot check against the definition: the smallest ids at the smallest distances.
    order = np.lexsort((ids, (unpack_codes(codes, 4) != unpack_codes(queries[:1], 4)).sum(axis=1)))
    np.testing.assert_array_equal(index.ids[expected_positions[0]], ids[order[:9_000]])


def test_threads_do_not_change_results_and_faiss_threads_are_restored() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, size=(20_000, 6), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(100, 6), dtype=np.uint8)
    before = faiss.omp_get_max_threads()
    results = []
    for threads in (1, 2, 3):
        index = HammingIndex(48, n_threads=threads)
        index.add(np.arange(20_000), codes)
        results.append(index.search_distances(queries, 50))
        assert faiss.omp_get_max_threads() == before
    for distances, ids in results[1:]:
        np.testing.assert_array_equal(distances, results[0][0])
        np.testing.assert_array_equal(ids, results[0][1])


# --- HammingIndex: faiss -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_bits", "n", "k"), [(48, 20_000, 250), (13, 5_000, 100), (64, 30_000, 10), (256, 3_000, 50)]
)
def test_hamming_index_agrees_with_faiss_up_to_ties(n_bits: int, n: int, k: int) -> None:
    rng = np.random.default_rng(n)
    codes = pack_codes(rng.integers(0, 2, size=(n, n_bits)))
    queries = pack_codes(rng.integers(0, 2, size=(50, n_bits)))
    ids = rng.permutation(n).astype(np.int64)  # ours ties by these ids, faiss by insertion position
    index = HammingIndex(n_bits)
    index.add(ids, codes)
    distances, found = index.search_distances(queries, k)
    reference = faiss.IndexBinaryFlat(8 * code_bytes(n_bits))  # unpadded: padding bits are zero on both sides
    reference.add(codes)
    faiss_distances, faiss_positions = reference.search(queries, k)
    faiss_ids = ids[faiss_positions]
    for row in range(len(queries)):
        # The same multiset of distances (both are sorted) ...
        np.testing.assert_array_equal(distances[row], faiss_distances[row])
        # ... and the same ids at every distance below the k-th (all codes at it are included).
        inner = distances[row] < distances[row, -1]
        assert set(found[row, inner]) == set(faiss_ids[row, inner])
    # With ids in insertion order, faiss' heap order (distance, position) is exactly ours.
    same_order = HammingIndex(n_bits)
    same_order.add(np.arange(n), codes)
    ordered_distances, ordered_ids = same_order.search_distances(queries, k)
    np.testing.assert_array_equal(ordered_distances, faiss_distances)
    np.testing.assert_array_equal(ordered_ids, faiss_positions)


# --- HammingIndex: the approximate kinds -------------------------------------------------------


def clustered_codes(seed: int, n: int, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes around 20 centres (8% of the bits flipped), as semantic hashes cluster by class; ids shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, size=(20, n_bits))
    bits = centres[rng.integers(0, 20, size=n)] ^ (rng.random((n, n_bits)) < 0.08)
    return rng.permutation(3 * n)[:n].astype(np.int64), pack_codes(bits)


def check_approximate_rows(index: HammingIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The contract's invariants of an approximate search: true distances, rows sorted by
    (distance, id), distinct ids, padding last; returns (distances, ids)."""
    distances, found = index.search_distances(queries, k)
    assert distances.shape == found.shape == (len(queries), min(k, index.ntotal))
    np.testing.assert_array_equal(distances, true_distances(index, queries, found))
    for row_distances, row_ids in zip(distances, found, strict=True):
        real = row_ids != NO_ID
        assert real.tolist() == sorted(real.tolist(), reverse=True)  # padding last
        keys = list(zip(row_distances[real].tolist(), row_ids[real].tolist(), strict=True))
        assert keys == sorted(keys) and len(set(row_ids[real].tolist())) == real.sum()
    scores, ids = index.search(queries, k)
    np.testing.assert_array_equal(ids, found)
    np.testing.assert_array_equal(index.to_distance(scores), distances)
    _, positions = index.search_positions(queries, k)
    np.testing.assert_array_equal(np.where(positions >= 0, index.ids[positions], NO_ID), found)
    return distances, found


@pytest.mark.parametrize(
    "spec",
    ["ivf:nlist=8,nprobe=8", "multihash:nhash=1,b=8,nflip=8", "multihash:nhash=2,b=4,nflip=4"],
)
def test_exhaustive_approximate_kinds_find_the_exact_distances(spec: str) -> None:
    # All lists probed, or every key of a table within nflip flips: every code is a candidate.
    ids, codes = clustered_codes(1, 600, 8)
    queries = np.concatenate([codes[:5], pack_codes(np.random.default_rng(2).integers(0, 2, size=(40, 8)))])
    index = HammingIndex.from_spec(spec, 8)
    half = len(ids) // 2
    index.add(ids[:half], codes[:half])
    index.add(ids[half:], codes[half:])  # before or after the first search, codes go in
    for k in (1, 30, 700):
        distances, found = check_approximate_rows(index, queries, k)
        expected_distances, expected_ids = reference_search(ids, codes, queries, 8, k)
        np.testing.assert_array_equal(distances, expected_distances)
        for row in range(len(queries)):  # below the k-th distance, the very same codes
            inner = expected_distances[row] < expected_distances[row, -1]
            assert set(found[row, inner]) == set(expected_ids[row, inner])
    assert (index.last_candidates == 600).all()


@pytest.mark.parametrize(("spec", "least_recall"), [("ivf:nprobe=4", 0.9), ("multihash:nflip=2", 0.9)])
def test_approximate_kinds_on_clustered_codes(spec: str, least_recall: float) -> None:
    ids, codes = clustered_codes(3, 8_000, 48)
    queries = codes[:60]
    index = HammingIndex.from_spec(spec, 48)
    index.add(ids[4_000:], codes[4_000:])
    index.add(ids[:4_000], codes[:4_000])
    exact = HammingIndex(48)
    exact.add(ids, codes)
    k = 20
    distances, found = check_approximate_rows(index, queries, k)
    exact_distances, _ = exact.search_distances(queries, k)
    # Recall by distance (a code as near as an exact result counts, whatever its id).
    matched = [
        len(set(enumerate_multiset(a)) & set(enumerate_multiset(b)))
        for a, b in zip(distances, exact_distances, strict=True)
    ]
    assert np.mean(matched) / k >= least_recall
    assert (index.last_candidates > 0).all() and (index.last_candidates < 8_000).all()
    exact_ids = exact.search_distances(queries, 1)[1]
    np.testing.assert_array_equal(found[:, :1], exact_ids)  # the query's own code is found first


def enumerate_multiset(values: np.ndarray) -> list[tuple[int, int]]:
    """(value, occurrence) pairs, so that set intersection counts a multiset's common elements."""
    seen: dict[int, int] = {}
    pairs = []
    for value in values.tolist():
        seen[value] = seen.get(value, 0) + 1
        pairs.append((value, seen[value]))
    return pairs


def test_multihash_keys_on_the_codes_bits_not_the_padding() -> None:
    # 13 bits = 2 bytes with 3 padding bits. One table on all 13 bits, no flips: only codes equal
    # to the query are candidates. Were the table keyed on faiss' own bit order it would read the
    # padding bits and miss bits 8..12, finding codes that differ there.
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, size=(2_000, 13))
    bits[:50, :8] = bits[0, :8]  # same first byte as code 0, other last 5 bits
    index = HammingIndex(13, kind="multihash", nhash=1, b=13, nflip=0)
    index.add(np.arange(2_000), pack_codes(bits))
    distances, found = index.search_distances(pack_codes(bits[:1]), 50)
    same = np.flatnonzero((bits == bits[0]).all(axis=1))
    assert found[0, : len(same)].tolist() == same.tolist()
    assert (distances[0, : len(same)] == 0).all() and (found[0, len(same) :] == NO_ID).all()
    # With b = 5 over bits 8..12 (the second table), the codes sharing them are found.
    second = HammingIndex(13, kind="multihash", nhash=2, b=5, nflip=0)
    second.add(np.arange(2_000), pack_codes(bits))
    _, found = second.search_distances(pack_codes(bits[:1]), 2_000)
    expected = (bits[:, :5] == bits[0, :5]).all(axis=1) | (bits[:, 5:10] == bits[0, 5:10]).all(axis=1)
    assert set(found[0][found[0] != NO_ID].tolist()) == set(np.flatnonzero(expected).tolist())


def test_kind_specs_and_their_errors() -> None:
    index = HammingIndex.from_spec("ivf:nprobe=4,nlist=16", 48, n_threads=1)
    assert (index.kind, index.nlist, index.nprobe, index.n_threads) == ("ivf", 16, 4, 1)
    assert index.spec == "ivf:nlist=16,nprobe=4"
    assert HammingIndex(48).spec == "flat"
    assert HammingIndex(48, kind="multihash", b=16).spec == "multihash:b=16"
    with pytest.raises(SemretError, match="unknown Hamming index kind 'hnsw'"):
        HammingIndex.from_spec("hnsw", 48)
    with pytest.raises(SemretError, match="unknown parameter nflip"):
        HammingIndex.from_spec("ivf:nflip=2", 48)
    with pytest.raises(SemretError, match="nprobe is a parameter of another"):
        HammingIndex(48, nprobe=3)
    with pytest.raises(SemretError, match="nhash \\* b must be at most the 48 bits"):
        HammingIndex(48, kind="multihash", nhash=4, b=16)
    with pytest.raises(SemretError, match="b \\(bits per hash\\) must be an integer between 1 and 13"):
        HammingIndex(13, kind="multihash", b=14)
    with pytest.raises(SemretError, match="nlist must be"):
        HammingIndex(48, kind="ivf", nlist=0)
    small = HammingIndex(48, kind="ivf", nlist=10)
    small.add(np.arange(5), np.zeros((5, 6), dtype=np.uint8))
    with pytest.raises(SemretError, match="nlist \\(10\\) must be at most the number of codes \\(5\\)"):
        small.search(np.zeros((1, 6), dtype=np.uint8), 1)


def test_approximate_index_follows_adds_reset_and_parameter_changes() -> None:
    ids, codes = clustered_codes(6, 2_000, 16)
    index = HammingIndex(16, kind="multihash", nhash=2, b=8, nflip=0)
    index.add(ids[:1_000], codes[:1_000])
    index.search(codes[:1], 5)
    index.add(ids[1_000:], codes[1_000:])  # after the first search: into the built index
    distances, found = index.search_distances(codes[1_500:1_501], 2_000)
    assert distances[0, 0] == 0 and ids[1_500] in found[0]
    index.nflip = 8  # a search-time parameter: every key of a table within 8 flips, all codes
    index.search(codes[:3], 5)
    assert (index.last_candidates == 2_000).all()
    index.b, index.nhash = 16, 1  # a build parameter: built again, all 16 bits in one table
    index.nflip = 0
    index.search(codes[:1], 5)
    assert index.last_candidates[0] == (unpack_codes(codes, 16) == unpack_codes(codes[:1], 16)).all(axis=1).sum()
    index.reset()
    index.add([7], codes[:1])
    assert index.search_distances(codes[:1], 3)[1].tolist() == [[7]]


# --- HammingIndex: state, persistence and errors ------------------------------------------------


def test_add_in_batches_reset_and_codes() -> None:
    rng = np.random.default_rng(3)
    codes = pack_codes(rng.integers(0, 2, size=(100, 13)))
    ids = rng.permutation(1000)[:100]
    whole = HammingIndex(13)
    whole.add(ids, codes)
    batches = HammingIndex(13)
    for part in np.array_split(np.arange(100), 7):
        batches.add(ids[part], codes[part])
    np.testing.assert_array_equal(batches.ids, np.sort(ids))
    np.testing.assert_array_equal(batches.codes(), codes[np.argsort(ids)])
    for a, b in zip(whole.search_distances(codes[:5], 9), batches.search_distances(codes[:5], 9), strict=True):
        np.testing.assert_array_equal(a, b)
    batches.reset()
    assert batches.ntotal == 0
    batches.add([1], codes[:1])
    assert batches.ids.tolist() == [1]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    codes = pack_codes(rng.integers(0, 2, size=(500, 48)))
    ids = rng.permutation(10_000)[:500]
    index = HammingIndex(48)
    index.add(ids, codes)
    path = tmp_path / "codes.npz"
    index.save(path)
    loaded = HammingIndex.load(path)
    assert loaded.n_bits == 48 and loaded.ntotal == 500
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.codes(), index.codes())
    for a, b in zip(index.search_distances(codes[:20], 30), loaded.search_distances(codes[:20], 30), strict=True):
        np.testing.assert_array_equal(a, b)
    # The spec is saved; the approximate index is built again when needed.
    ivf = HammingIndex(48, kind="ivf", nlist=4, nprobe=2)
    ivf.add(ids, codes)
    ivf.save(tmp_path / "ivf.npz")
    assert HammingIndex.load(tmp_path / "ivf.npz").spec == "ivf:nlist=4,nprobe=2"
    assert HammingIndex.load(tmp_path / "ivf.npz", spec="flat").kind == "flat"
    # A file written before the kinds (no spec in it) loads as "flat".
    old = tmp_path / "old.npz"
    np.savez(
        old, format=np.array("semret-hamming-index"), version=np.array(1), n_bits=np.array(48), ids=ids, codes=codes
    )
    loaded = HammingIndex.load(old)
    assert loaded.spec == "flat"
    np.testing.assert_array_equal(loaded.codes(), index.codes())


def test_load_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, something=np.arange(3))
    with pytest.raises(SemretError, match="cannot read a Hamming index"):
        HammingIndex.load(other)
    with pytest.raises(SemretError, match="cannot read a Hamming index"):
        HammingIndex.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(SemretError, match="cannot read a Hamming index"):
        HammingIndex.load(garbage)


def test_hamming_index_errors() -> None:
    index = HammingIndex(13)
    with pytest.raises(SemretError, match="empty"):
        index.search_distances(np.zeros((1, 2), dtype=np.uint8), 1)
    with pytest.raises(SemretError, match="2 bytes per code"):
        index.add([1], np.zeros((1, 6), dtype=np.uint8))
    with pytest.raises(SemretError, match="uint8"):
        index.add([1], np.zeros((1, 2), dtype=np.int32))
    with pytest.raises(SemretError, match="padding bits"):
        index.add([1], np.array([[0, 1]], dtype=np.uint8))
    with pytest.raises(SemretError, match="duplicate ids"):
        index.add([1, 1], np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(SemretError, match=">= 0"):
        index.add([-1], np.zeros((1, 2), dtype=np.uint8))
    with pytest.raises(SemretError, match="got 1 ids for 2 rows"):
        index.add([1], np.zeros((2, 2), dtype=np.uint8))
    index.add([1, 2], np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(SemretError, match="already in the index: \\[2\\]"):
        index.add([2, 3], np.zeros((2, 2), dtype=np.uint8))
    assert index.ntotal == 2  # nothing of a failed add is kept
    for k in (0, -1, 1.5, True):
        with pytest.raises(SemretError, match="k must be"):
            index.search_distances(np.zeros((1, 2), dtype=np.uint8), k)  # type: ignore[arg-type]
    with pytest.raises(SemretError, match="2 bytes per code"):
        index.search_distances(np.zeros((1, 1), dtype=np.uint8), 1)
    with pytest.raises(SemretError, match="queries"):
        index.search_distances(np.zeros(2, dtype=np.uint8), 1)
    with pytest.raises(SemretError, match="positive integer"):
        HammingIndex(0)
    with pytest.raises(SemretError, match="n_threads"):
        HammingIndex(8, n_threads=0)
