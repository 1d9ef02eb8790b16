"""Binary codes (packing, thresholds, the int64 form) and `HammingIndex`: hand-computed cases, a
brute-force reference (ids and distances exactly, ties by id), agreement with faiss, errors."""

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

from semret.core import hamming
from semret.core.codes import (
    code_bytes,
    codes_from_activations,
    codes_to_int64,
    int64_to_codes,
    pack_codes,
    unpack_codes,
)
from semret.core.hamming import MISSING_DISTANCE, NO_ID, HammingIndex
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


@contextmanager
def small_chunks(chunk: int, area: int) -> Iterator[None]:
    """Tiny chunks and blocks, so that small indexes take every path (chunks, pool reductions)."""
    with mock.patch.object(hamming, "_CHUNK", chunk), mock.patch.object(hamming, "_BLOCK_AREA", area):
        yield


@st.composite
def hamming_cases(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    n_bits = draw(st.sampled_from([1, 5, 8, 13, 48, 64, 65, 130, 300]))
    n = draw(st.integers(1, 120))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Codes from a small pool (and near-copies), so that equal distances are common.
    pool = rng.integers(0, 2, size=(draw(st.integers(1, 8)), n_bits))
    bits = pool[rng.integers(0, len(pool), size=n)]
    flips = rng.random(bits.shape) < draw(st.sampled_from([0.0, 0.05, 0.5]))
    codes = pack_codes(bits ^ flips)
    ids = rng.choice(10 * n + 10, size=n, replace=False).astype(np.int64)
    queries = pack_codes(np.concatenate([pool[:2], rng.integers(0, 2, size=(draw(st.integers(0, 5)), n_bits))]))
    k = draw(st.integers(1, n + 3))
    return n_bits, ids, codes, queries, k, draw(st.sampled_from([1, 2, 3, 7, 64])), draw(st.sampled_from([1, 2]))


@settings(max_examples=300, deadline=None)
@given(hamming_cases())
def test_hamming_index_equals_brute_force(case: tuple) -> None:
    n_bits, ids, codes, queries, k, chunk, threads = case
    expected = reference_search(ids, codes, queries, n_bits, k)
    with small_chunks(chunk, area=max(chunk, 3 * chunk)):
        index = HammingIndex(n_bits, n_threads=threads)
        half = len(ids) // 2
        index.add(ids[half:], codes[half:])  # two batches, ids not ascending
        index.add(ids[:half], codes[:half])
        distances, found = index.search_distances(queries, k)
    np.testing.assert_array_equal(found, expected[1])
    np.testing.assert_array_equal(distances, expected[0])


@pytest.mark.parametrize("seed", range(4))
def test_hamming_index_equals_brute_force_on_larger_random_indexes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_bits = [48, 13, 64, 100][seed]
    n = 3_000
    codes = pack_codes(rng.integers(0, 2, size=(n, n_bits)))
    codes[: n // 4] = codes[0]  # a quarter are copies: heavy ties at distance 0
    ids = rng.permutation(5 * n)[:n]
    queries = np.concatenate([codes[:3], pack_codes(rng.integers(0, 2, size=(40, n_bits)))])
    for k, chunk in ((1, 512), (250, 512), (1000, 256), (2_999, 1 << 14)):
        with small_chunks(chunk, area=4 * chunk):
            index = HammingIndex(n_bits)
            index.add(ids, codes)
            distances, found = index.search_distances(queries, k)
        expected_distances, expected_ids = reference_search(ids, codes, queries, n_bits, k)
        np.testing.assert_array_equal(found, expected_ids)
        np.testing.assert_array_equal(distances, expected_distances)


def test_threads_do_not_change_results() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, size=(20_000, 6), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(100, 6), dtype=np.uint8)
    results = []
    for threads in (1, 2, 3):
        index = HammingIndex(48, n_threads=threads)
        index.add(np.arange(20_000), codes)
        results.append(index.search_distances(queries, 50))
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
    reference = faiss.IndexBinaryFlat(8 * code_bytes(n_bits))  # padding bits are zero on both sides
    reference.add(codes)
    faiss_distances, faiss_positions = reference.search(queries, k)
    faiss_ids = ids[faiss_positions]
    for row in range(len(queries)):
        # The same multiset of distances (both are sorted) ...
        np.testing.assert_array_equal(distances[row], faiss_distances[row])
        # ... and the same ids at every distance below the k-th (all codes at it are included),
        # and exactly the same ids wherever a distance occurs once in the row and is not the k-th.
        inner = distances[row] < distances[row, -1]
        assert set(found[row, inner]) == set(faiss_ids[row, inner])
        values, counts = np.unique(distances[row], return_counts=True)
        unique = np.isin(distances[row], values[counts == 1]) & inner
        np.testing.assert_array_equal(found[row, unique], faiss_ids[row, unique])
    # With ids in insertion order, faiss' heap order (distance, position) is exactly ours.
    same_order = HammingIndex(n_bits)
    same_order.add(np.arange(n), codes)
    ordered_distances, ordered_ids = same_order.search_distances(queries, k)
    np.testing.assert_array_equal(ordered_distances, faiss_distances)
    np.testing.assert_array_equal(ordered_ids, faiss_positions)


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
