"""Neural LSH as published (`semret.indexes.neural_lsh`, PermGNN's hashing, arXiv 2012.08974):
the three loss terms against hand computations and a literal port of the official
``HashCodeGenerator.computeLoss``, the official early stopping and bit subsets, bucket keys from
the code's signs, candidates = the union of the query's buckets, results = a brute-force numpy
re-rank of them, the search contract, files, seeding, errors, and recall on clustered data.

Recall, measured on the clustered set below (20 Gaussian clusters in 32-d, 2,000 points, 200
queries; 5 epochs, index seeds 0-2, data seeds 0-1): recall@10 0.39-0.48 with 92-108 candidates a
query (about 5% of the database, which random candidates would give as recall). Random-hyperplane
LSH with 8 bits and 10 independent tables reached 0.72-0.74 with 150-171 candidates: the 10 tables
of the published scheme share one 16-bit code, so they overlap, and its decorrelation term pushes
apart the many same-cluster pairs that are not kNN neighbours; only what is robust is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from semret.errors import SemretError
from semret.indexes import ExactIndex, NeuralLSHIndex, load_index, make_index
from semret.indexes.base import check_index_params, index_class
from semret.indexes.neural_lsh import (
    _EarlyStopping,
    _KnnGraph,
    _LabelGraph,
    draw_bit_subsets,
    loss_terms,
    weighted_loss,
)

DIM = 16
N = 600
SMALL: dict[str, Any] = {"epochs": 3, "seed": 0}


def clustered(n: int, dim: int, seed: int = 0, n_queries: int = 50, spread: float = 0.8) -> tuple[Any, ...]:
    """(vectors, queries, labels of the vectors) from 20 Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    labels = rng.integers(0, 20, n + n_queries)
    points = (centres[labels] + spread * rng.normal(size=(n + n_queries, dim))).astype(np.float32)
    return points[:n], points[n:], labels[:n]


@pytest.fixture(scope="module")
def data() -> tuple[Any, ...]:
    return clustered(N, DIM)


@pytest.fixture(scope="module")
def fitted(data: tuple[Any, ...]) -> NeuralLSHIndex:
    vectors, _, _ = data
    index = NeuralLSHIndex(DIM, **SMALL).fit(vectors)
    index.add(np.arange(N) * 3 + 1, vectors)
    return index


def unit(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(x, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


# --- the loss, term by term ------------------------------------------------------------------------


def test_each_loss_term_against_a_hand_computation() -> None:
    codes = torch.tensor([[0.5, -1.0, 0.25], [1.0, 1.0, -0.5], [-0.5, 0.0, 1.0]])
    rows, columns = torch.tensor([0, 1, 2]), torch.tensor([1, 0, 0])
    balance, quantisation, decorrelation = loss_terms(codes, rows, columns)
    # loss1 = |0.5 - 1 + 0.25| + |1 + 1 - 0.5| + |-0.5 + 0 + 1| = 0.25 + 1.5 + 0.5
    assert float(balance) == pytest.approx(2.25)
    # loss2 = (0.5 + 0 + 0.75) + (0 + 0 + 0.5) + (0.5 + 1 + 0)
    assert float(quantisation) == pytest.approx(3.25)
    # h0.h1 = 0.5 - 1 - 0.125 = -0.625 (twice, both orders); h2.h0 = -0.25 + 0 + 0.25 = 0
    assert float(decorrelation) == pytest.approx(1.25)
    # weighted: 0.1 / 3 * 2.25 + 0.2 / 3 * 3.25 + 0.7 / 9 * 1.25
    total = weighted_loss(balance, quantisation, decorrelation, 3, 9, 0.1, 0.2)
    assert float(total) == pytest.approx(0.1 / 3 * 2.25 + 0.2 / 3 * 3.25 + 0.7 / 9 * 1.25)
    # each weight alone picks its term out
    assert float(weighted_loss(balance, quantisation, decorrelation, 3, 9, 1.0, 0.0)) == pytest.approx(2.25 / 3)
    assert float(weighted_loss(balance, quantisation, decorrelation, 3, 9, 0.0, 1.0)) == pytest.approx(3.25 / 3)
    assert float(weighted_loss(balance, quantisation, decorrelation, 3, 9, 0.0, 0.0)) == pytest.approx(1.25 / 9)
    assert float(loss_terms(codes, torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))[2]) == 0


def official_compute_loss(codes: torch.Tensor, non_nbr: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``HashCodeGenerator.computeLoss`` of minmax/hashing_main.py, line for line (its codes given)."""
    loss1 = loss2 = 0
    for i in range(len(codes)):
        selfcode = codes[i]
        loss1 = loss1 + torch.abs(torch.sum(selfcode))
        loss2 = loss2 + torch.norm(torch.abs(selfcode) - 1, p=1)
    similarity_mat = torch.mul(torch.abs(torch.mm(codes, torch.transpose(codes, 0, 1))), non_nbr)
    loss3 = torch.sum(similarity_mat) - torch.sum(torch.diagonal(similarity_mat))
    return loss1, loss2, loss3


def test_the_loss_over_every_non_neighbour_pair_is_the_official_one() -> None:
    generator = torch.Generator().manual_seed(5)
    codes = torch.tanh(torch.randn(9, 6, generator=generator))
    non_nbr = (torch.rand(9, 9, generator=generator) > 0.3).float()
    off_diagonal = non_nbr.bool() & ~torch.eye(9, dtype=torch.bool)
    ours = loss_terms(codes, *torch.nonzero(off_diagonal, as_tuple=True))
    for got, expected in zip(ours, official_compute_loss(codes, non_nbr), strict=True):
        assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # and the batch loss of run_graph_lp_hash, with LAMBDA1 = LAMBDA2 = 0.01 and loss3 / B^2
    l1, l2, l3 = official_compute_loss(codes, non_nbr)
    official_total = (0.01 / 9) * l1 + (0.01 / 9) * l2 + ((1 - 0.02) / 81) * l3
    assert float(weighted_loss(*ours, 9, 81, 0.01, 0.01)) == pytest.approx(float(official_total), rel=1e-5)


def test_early_stopping_is_the_official_rule() -> None:
    """EarlyStoppingModule(av, patience=2, delta=0.5).check([-loss]): stop once more than 2 epochs
    in a row failed to better the best by 0.5."""
    stopper = _EarlyStopping(2, 0.5)
    decisions = [stopper.stop(loss) for loss in (10.0, 9.0, 8.8, 8.7, 8.6, 8.0)]
    assert decisions == [False, False, False, False, True, True]
    never = _EarlyStopping(None, 0.5)
    assert not any(never.stop(10.0) for _ in range(100))


def test_training_stops_early_by_patience_and_lowers_the_loss(data: tuple[Any, ...]) -> None:
    vectors, _, _ = data
    stopped = NeuralLSHIndex(DIM, epochs=50, patience=0, min_delta=1e9).fit(vectors)
    assert len(stopped.loss_history_) == 2  # epoch 1 sets the best, epoch 2 fails it: 1 bad epoch > 0
    trained = NeuralLSHIndex(DIM, epochs=6).fit(vectors)
    assert len(trained.loss_history_) == 6 and trained.loss_history_[-1] < trained.loss_history_[0]


# --- the neighbour graph and the sampled negatives ------------------------------------------------


def test_knn_graph_non_neighbours_are_pairs_outside_each_others_nearest() -> None:
    rng = np.random.default_rng(1)
    lists = np.array([rng.choice([j for j in range(30) if j != i], 4, replace=False) for i in range(30)])
    graph = _KnnGraph(lists)
    batch = rng.permutation(30)[:12]
    mask = graph.non_neighbours(batch)
    for a, i in enumerate(batch):
        for b, j in enumerate(batch):
            neighbours = i == j or j in lists[i] or i in lists[j]
            assert mask[a, b] == (not neighbours)
    assert np.array_equal(graph.non_neighbours(batch), mask)  # no state left between batches
    labels = _LabelGraph(np.array([0, 1, 0, 2]))
    assert labels.non_neighbours(np.array([2, 0, 1])).tolist() == [
        [False, False, True],
        [False, False, True],
        [True, True, False],
    ]


def test_negatives_are_drawn_among_the_non_neighbours_without_replacement() -> None:
    index = NeuralLSHIndex(DIM, negatives=3, batch_size=10)
    generator = torch.Generator().manual_seed(0)
    non_neighbours = torch.rand(10, 10, generator=generator) > 0.4
    non_neighbours.fill_diagonal_(False)
    non_neighbours[0] = False
    non_neighbours[0, 5] = True  # row 0 has one non-neighbour: it gets just that one
    rows, columns = index._pairs(non_neighbours, generator)
    assert non_neighbours[rows, columns].all()
    for row in range(10):
        picked = columns[rows == row].tolist()
        assert len(picked) == min(3, int(non_neighbours[row].sum())) == len(set(picked))
    every = NeuralLSHIndex(DIM, negatives=None)._pairs(non_neighbours, generator)
    assert torch.equal(torch.stack(every), torch.stack(torch.nonzero(non_neighbours, as_tuple=True)))


def test_label_neighbours_need_labels(data: tuple[Any, ...]) -> None:
    vectors, queries, labels = data
    index = NeuralLSHIndex(DIM, neighbours_by="label", epochs=2)
    with pytest.raises(SemretError, match="needs labels"):
        index.fit(vectors)
    index.fit(vectors, labels)
    index.add(np.arange(N), vectors)
    assert index.search(queries, 5)[1].shape == (len(queries), 5)


# --- tables, keys, candidates, results ------------------------------------------------------------


def test_bit_subsets_are_the_official_draw(fitted: NeuralLSHIndex) -> None:
    subsets = fitted.bit_subsets_
    assert subsets is not None and subsets.shape == (10, 8)
    assert all(len(set(row.tolist())) == 8 and row.min() >= 0 and row.max() < 16 for row in subsets)
    rng, indices = np.random.default_rng(0), list(range(16))
    for row in subsets:  # LSH.init_hash_functions: shuffle again, take the first J
        rng.shuffle(indices)  # type: ignore[arg-type]
        assert row.tolist() == indices[:8]
    assert len({tuple(row) for row in subsets.tolist()}) > 1
    assert np.array_equal(draw_bit_subsets(16, 10, 8, 0), subsets)


def test_bucket_keys_are_the_chosen_sign_bits_packed(fitted: NeuralLSHIndex, data: tuple[Any, ...]) -> None:
    vectors, _, _ = data
    codes = fitted.codes(vectors)
    assert np.allclose(codes, np.tanh(unit(vectors) @ fitted.weights_ + fitted.bias_), atol=1e-6)
    keys = fitted.hash_keys(vectors)
    assert fitted.bit_subsets_ is not None
    for table, subset in enumerate(fitted.bit_subsets_):
        bits = np.maximum(np.sign(codes[:, subset]), 0).astype(np.int64)  # assign_bucket: -1 -> 0
        expected = bits @ (1 << np.arange(len(subset) - 1, -1, -1))  # the first chosen bit most significant
        assert np.array_equal(keys[:, table], expected.astype(np.uint64))
    assert keys.max() < 2**8


def brute_force(index: NeuralLSHIndex, vectors: Any, ids: Any, queries: Any, k: int) -> tuple[Any, Any, Any]:
    """(scores, ids, candidates) in plain numpy: the union of the query's buckets over the tables,
    ranked by cosine (ties by id), padded."""
    keys, query_keys = index.hash_keys(vectors), index.hash_keys(queries)
    db, q = unit(vectors), unit(queries)
    width = min(k, len(ids))
    scores, found = np.full((len(q), width), -np.inf), np.full((len(q), width), -1)
    sizes = []
    for row in range(len(q)):
        members = np.flatnonzero((keys == query_keys[row]).any(axis=1))
        sizes.append(len(members))
        similarity = db[members] @ q[row]
        order = np.lexsort((ids[members], -similarity))[:width]
        scores[row, : len(order)], found[row, : len(order)] = similarity[order], ids[members][order]
    return scores, found, np.array(sizes)


def test_results_are_a_cosine_rerank_of_the_union_of_the_buckets(fitted: NeuralLSHIndex, data: tuple[Any, ...]) -> None:
    vectors, queries, _ = data
    ids = np.arange(N) * 3 + 1
    for k in (1, 10, 60):
        scores, found = fitted.search(queries, k)
        expected_scores, expected_ids, sizes = brute_force(fitted, vectors, ids, queries, k)
        assert np.array_equal(found, expected_ids)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
        assert np.array_equal(fitted.last_candidates, sizes)
    assert fitted.last_candidates.min() > 0 and fitted.last_candidates.max() < N


def test_exclude_ids_and_k_beyond_the_collection(fitted: NeuralLSHIndex, data: tuple[Any, ...]) -> None:
    vectors, _, _ = data
    ids = np.arange(N) * 3 + 1
    queries, own = vectors[:20], ids[:20]
    _, plain = fitted.search(queries, 6)
    assert np.array_equal(plain[:, 0], own)  # each point is in its own buckets, its own best match
    _, without = fitted.search(queries, 5, exclude_ids=own)
    assert np.array_equal(without, plain[:, 1:])
    scores, everything = fitted.search(queries, 10**9)
    assert everything.shape == (20, N)
    for row, n_candidates in enumerate(fitted.last_candidates):
        assert np.all(everything[row, n_candidates:] == -1) and np.all(scores[row, n_candidates:] == -np.inf)
        assert np.all(everything[row, :n_candidates] >= 0)


def test_empty_and_unfitted_errors(data: tuple[Any, ...]) -> None:
    vectors, queries, _ = data
    index = NeuralLSHIndex(DIM, **SMALL)
    with pytest.raises(SemretError, match="fitted"):
        index.add(np.arange(3), vectors[:3])
    with pytest.raises(SemretError, match="empty"):
        index.search(queries, 3)
    with pytest.raises(SemretError, match="fitted"):
        index.hash_keys(vectors[:3])
    with pytest.raises(SemretError, match="at least 11 fit vectors"):
        index.fit(vectors[:10])
    index.fit(vectors)
    with pytest.raises(SemretError, match="neural-lsh index is empty"):
        index.search(queries, 3)


# --- files, seeding, parameters ---------------------------------------------------------------


def test_save_and_load_round_trip(fitted: NeuralLSHIndex, data: tuple[Any, ...], tmp_path: Path) -> None:
    vectors, queries, _ = data
    fitted.save(tmp_path / "index.npz")
    loaded = load_index(tmp_path / "index.npz")
    assert type(loaded) is NeuralLSHIndex and loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.bit_subsets_, fitted.bit_subsets_)
    assert np.array_equal(loaded.hash_keys(vectors), fitted.hash_keys(vectors))
    for got, expected in zip(loaded.search(queries, 10), fitted.search(queries, 10), strict=True):
        assert np.array_equal(got, expected)
    assert np.array_equal(loaded.last_candidates, fitted.last_candidates)
    NeuralLSHIndex(DIM, n_tables=2).save(tmp_path / "unfitted.npz")
    unfitted = load_index(tmp_path / "unfitted.npz")
    assert type(unfitted) is NeuralLSHIndex and not unfitted.is_fitted


def test_a_tampered_file_is_a_clear_error(fitted: NeuralLSHIndex, tmp_path: Path) -> None:
    fitted.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key, value, message in (
        ("state_weights", arrays["state_weights"][:, :-1], "weights"),
        ("state_bit_subsets", np.zeros((10, 8), dtype=np.int64), "distinct bit positions"),
        ("state_bit_subsets", arrays["state_bit_subsets"] + 16, "distinct bit positions"),
    ):
        np.savez(tmp_path / "bad.npz", **{**arrays, key: value})
        with pytest.raises(SemretError, match=message):
            load_index(tmp_path / "bad.npz")
    header = json.loads(str(arrays["header"]))
    header["params"]["hidden"] = 4  # a parameter neither neural-lsh nor neural-lsh-knn has
    np.savez(tmp_path / "odd.npz", **{**arrays, "header": np.array(json.dumps(header))})
    with pytest.raises(SemretError, match="do not fit a neural-lsh index"):
        load_index(tmp_path / "odd.npz")


def test_same_seed_same_index_other_seed_other_index(data: tuple[Any, ...]) -> None:
    vectors, queries, _ = data
    state_before = torch.get_rng_state()
    first, again, other = (NeuralLSHIndex(DIM, epochs=2, seed=seed).fit(vectors) for seed in (4, 4, 5))
    assert torch.equal(torch.get_rng_state(), state_before)  # no global seeding
    assert first.weights_ is not None and again.weights_ is not None and other.weights_ is not None
    assert np.array_equal(first.weights_, again.weights_) and np.array_equal(first.bias_, again.bias_)
    assert np.array_equal(first.bit_subsets_, again.bit_subsets_) and first.loss_history_ == again.loss_history_
    first.add(np.arange(N), vectors)
    again.add(np.arange(N), vectors)
    for a, b in zip(first.search(queries, 10), again.search(queries, 10), strict=True):
        assert np.array_equal(a, b)
    assert not np.allclose(first.weights_, other.weights_)
    assert not np.array_equal(first.bit_subsets_, other.bit_subsets_)


def test_fitting_again_rehashes_the_vectors_held(data: tuple[Any, ...]) -> None:
    vectors, queries, _ = data
    refitted = NeuralLSHIndex(DIM, epochs=1).fit(-vectors[::-1])
    refitted.add(np.arange(N), vectors)
    refitted.fit(vectors)
    direct = NeuralLSHIndex(DIM, epochs=1).fit(vectors)
    direct.add(np.arange(N), vectors)
    assert np.array_equal(refitted.search(queries, 10)[1], direct.search(queries, 10)[1])


def test_a_sample_trains_the_code_when_there_are_many_vectors(data: tuple[Any, ...]) -> None:
    vectors, _, _ = data
    seen: list[tuple[str, int, int]] = []
    index = NeuralLSHIndex(DIM, epochs=2, fit_sample=200, progress=lambda *a: seen.append(a))
    index.fit(vectors)
    assert ("neighbours", 200, 200) in seen and seen[-1] == ("training", 2, 2)


def test_the_defaults_are_the_official_ones() -> None:
    index = make_index("neural-lsh", 8)
    assert isinstance(index, NeuralLSHIndex) and index_class("neural-lsh") is NeuralLSHIndex
    params = index.get_params()
    assert {name: params[name] for name in ("n_bits", "n_tables", "bits_per_table")} == {
        "n_bits": 16,  # --HASHCODE_DIM
        "n_tables": 10,  # LSH(av, gr, 10, d)
        "bits_per_table": 8,  # d = 8
    }
    assert params["balance_weight"] == params["quantisation_weight"] == 0.01  # --LAMBDA1, --LAMBDA2
    assert params["learning_rate"] == 0.05 and params["epochs"] == 200  # --LEARNING_RATE_FUNC, --NUM_EPOCHS
    assert params["patience"] == 50 and params["min_delta"] == 0.001  # EarlyStoppingModule(av, 50, 0.001)
    assert params["batch_size"] == 125 and params["negatives"] == 10  # the assignment citing the paper
    assert "progress" not in params and NeuralLSHIndex(**params).get_params() == params


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_bits": 0}, "n_bits must be an integer between 1 and 1024"),
        ({"n_bits": 16.0}, "n_bits"),
        ({"n_tables": 0}, "n_tables"),
        ({"bits_per_table": 0}, "bits_per_table"),
        ({"bits_per_table": 65, "n_bits": 100}, "bits_per_table must be an integer between 1 and 64"),
        ({"n_bits": 8, "bits_per_table": 12}, r"bits_per_table \(12\) must be at most n_bits \(8\)"),
        ({"balance_weight": -0.1}, "balance_weight"),
        ({"quantisation_weight": 1.5}, "quantisation_weight"),
        ({"balance_weight": 0.6, "quantisation_weight": 0.5}, r"balance_weight \(0.6\) \+ quantisation_weight"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"patience": -1}, "patience"),
        ({"min_delta": -1.0}, "min_delta"),
        ({"batch_size": 1}, "batch_size"),
        ({"negatives": 0}, "negatives"),
        ({"negatives": 125}, r"negatives \(125\) must be less than batch_size \(125\)"),
        ({"neighbours": 0}, "neighbours"),
        ({"neighbours_by": "colour"}, "unknown neighbours_by 'colour': choose one of cosine, label"),
        ({"fit_sample": 1}, "fit_sample"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
    ],
)
def test_bad_parameters_are_one_line_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(SemretError, match=message) as error:
        NeuralLSHIndex(DIM, **params)
    assert "\n" not in str(error.value)
    with pytest.raises(SemretError, match="index spec"):
        check_index_params("neural-lsh", params, "index spec 'neural-lsh:...'")


def test_recall_well_above_random_candidates_on_clustered_data() -> None:
    vectors, queries, _ = clustered(2000, 32, n_queries=200)
    exact = ExactIndex(32)
    exact.add(np.arange(2000), vectors)
    truth = exact.search(queries, 10)[1]
    index = NeuralLSHIndex(32, epochs=5).fit(vectors)
    index.add(np.arange(2000), vectors)
    found = index.search(queries, 10)[1]
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    share = index.last_candidates.mean() / 2000  # the recall of that many random candidates
    assert share < 0.15
    assert recall > 0.25 and recall > 4 * share
