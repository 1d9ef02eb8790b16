"""semret's neural LSH variant, kind ``neural-lsh-knn`` (`semret.indexes.neural_lsh_knn`; semret's
``neural-lsh`` before that name went to the published PermGNN scheme): learned tables make
neighbours collide, recall and work on a clustered set, candidates are exactly the query's
buckets, reproducibility, files (those saved as ``neural-lsh`` by earlier versions too), errors.

The data: 20 Gaussian clusters in 32-d (centres N(0, 1), spread 0.8), 4,000 points and 200
queries from the same clusters. Measured with the defaults (16 bits, 10 tables), seeds 0-2:
recall@10 0.88-0.91 with 155-168 candidates a query; a point and its nearest neighbour share a
bucket in some table 92% of the time, random pairs 3-4%; random-hyperplane LSH with 8 bits and 10
tables reached recall 0.74-0.76 with 316-336 candidates. The thresholds below leave margin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch.optim  # noqa: F401  # torch and torch._dynamo imported at collection, not in a test

from semret.errors import SemretError
from semret.indexes import ExactIndex, KnnNeuralLSHIndex, RandomHyperplaneLSH, load_index, make_index

DIM = 32
N = 4000


def clustered(seed: int = 0, n: int = N, n_queries: int = 200) -> tuple[npt.NDArray[np.float32], ...]:
    """(vectors, queries) drawn from 20 Gaussian clusters in 32-d."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))
    labels = rng.integers(0, 20, n + n_queries)
    points = (centres[labels] + 0.8 * rng.normal(size=(n + n_queries, DIM))).astype(np.float32)
    return points[:n], points[n:]


def recall(truth: npt.NDArray[np.int64], found: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found, strict=True)]))


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.float32], ...]:
    return clustered()


@pytest.fixture(scope="module")
def fitted(data: tuple[npt.NDArray[np.float32], ...]) -> KnnNeuralLSHIndex:
    """The default neural LSH, fitted on the clustered vectors and holding them under ids 0..N-1."""
    vectors, _ = data
    index = KnnNeuralLSHIndex(DIM).fit(vectors)
    index.add(np.arange(N), vectors)
    return index


@pytest.fixture(scope="module")
def truth(data: tuple[npt.NDArray[np.float32], ...]) -> npt.NDArray[np.int64]:
    """Exact top 10 of each query."""
    vectors, queries = data
    exact = ExactIndex(DIM)
    exact.add(np.arange(N), vectors)
    return exact.search(queries, 10)[1]


def test_neighbours_collide_far_more_often_than_random_pairs(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    vectors, _ = data
    exact = ExactIndex(DIM)
    exact.add(np.arange(N), vectors)
    nearest = exact.search(vectors, 2)[1][:, 1]  # each point's nearest other point
    keys = fitted.hash_keys(vectors)
    random_partner = np.random.default_rng(7).permutation(N)
    neighbours_collide = (keys == keys[nearest]).any(axis=1).mean()
    random_collide = (
        (keys[random_partner != np.arange(N)] == keys[random_partner][random_partner != np.arange(N)])
        .any(axis=1)
        .mean()
    )
    assert neighbours_collide > 0.8
    assert random_collide < 0.1
    # and per table, not just thanks to the union of 10 tables
    assert (keys == keys[nearest]).mean() > 5 * (keys == keys[random_partner]).mean()


def test_recall_with_a_fraction_of_the_collection_scored(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...], truth: npt.NDArray[np.int64]
) -> None:
    _, queries = data
    scores, ids = fitted.search(queries, 10)
    assert recall(truth, ids) > 0.8
    assert fitted.last_candidates.shape == (len(queries),)
    assert fitted.last_candidates.mean() < N / 10
    assert np.all(scores[:, :-1] >= scores[:, 1:])  # best first (rows with < 10 candidates end in -inf)
    assert np.array_equal(ids >= 0, np.isfinite(scores))


def test_learned_tables_beat_random_hyperplanes_with_fewer_candidates(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...], truth: npt.NDArray[np.int64]
) -> None:
    vectors, queries = data
    learned = recall(truth, fitted.search(queries, 10)[1])
    random_lsh = RandomHyperplaneLSH(DIM, n_bits=8, n_tables=10)
    random_lsh.add(np.arange(N), vectors)
    baseline = recall(truth, random_lsh.search(queries, 10)[1])
    assert learned > baseline + 0.05
    assert fitted.last_candidates.mean() < random_lsh.last_candidates.mean()


def test_candidates_are_the_union_of_the_query_buckets(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    vectors, queries = data
    keys, query_keys = fitted.hash_keys(vectors), fitted.hash_keys(queries[:20])
    _, ids = fitted.search(queries[:20], N)
    for row, query in enumerate(query_keys):
        expected = np.flatnonzero((keys == query).any(axis=1))
        assert fitted.last_candidates[row] == len(expected)
        assert np.array_equal(np.sort(ids[row][ids[row] >= 0]), expected)


def test_same_seed_same_buckets_other_seed_other_buckets(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    vectors = data[0][:1500]
    small: dict[str, Any] = {"n_tables": 3, "epochs": 2}
    first, again = KnnNeuralLSHIndex(DIM, **small).fit(vectors), KnnNeuralLSHIndex(DIM, **small).fit(vectors)
    assert np.array_equal(again.hash_keys(vectors), first.hash_keys(vectors))
    assert again.loss_history_ == first.loss_history_
    other = KnnNeuralLSHIndex(DIM, seed=1, **small).fit(vectors)
    assert (other.hash_keys(vectors) != first.hash_keys(vectors)).mean() > 0.5


def test_tables_differ_from_each_other(fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...]) -> None:
    keys = fitted.hash_keys(data[0])
    for table in range(1, fitted.n_tables):
        assert (keys[:, table] != keys[:, 0]).any()
    for weights, _ in fitted.layers_:
        assert not np.allclose(weights[0].numpy(), weights[1].numpy())


def test_training_lowers_the_loss_and_keeps_bits_balanced(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    assert fitted.loss_history_[-1] < fitted.loss_history_[0]
    keys = fitted.hash_keys(data[0])
    bits = (keys[:, :, None] >> np.arange(fitted.n_bits, dtype=np.uint64)) & np.uint64(1)
    on = bits.mean(axis=0)  # (tables, bits): fraction of points with each bit set
    assert on.min() > 0.15 and on.max() < 0.85


def test_save_and_load_give_the_same_index(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...], tmp_path: Path
) -> None:
    vectors, queries = data
    fitted.save(tmp_path / "neural.npz")
    loaded = load_index(tmp_path / "neural.npz")
    assert isinstance(loaded, KnnNeuralLSHIndex)
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.hash_keys(vectors), fitted.hash_keys(vectors))
    expected = fitted.search(queries, 10)
    got = loaded.search(queries, 10)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert np.array_equal(loaded.last_candidates, fitted.last_candidates)


def test_hidden_layer_fit_save_and_load(data: tuple[npt.NDArray[np.float32], ...], tmp_path: Path) -> None:
    vectors, queries = data
    index = make_index("neural-lsh-knn", DIM, n_bits=8, n_tables=3, hidden=16, epochs=2, fit_sample=1000, seed=3)
    assert isinstance(index, KnnNeuralLSHIndex)
    index.fit(vectors)
    assert [tuple(w.shape) for w, _ in index.layers_] == [(3, DIM, 16), (3, 16, 8)]
    index.add(np.arange(N), vectors)
    index.save(tmp_path / "hidden.npz")
    loaded = load_index(tmp_path / "hidden.npz")
    assert np.array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])


def test_a_file_saved_as_neural_lsh_by_the_previous_version_loads_as_this_kind(
    fitted: KnnNeuralLSHIndex, data: tuple[npt.NDArray[np.float32], ...], tmp_path: Path
) -> None:
    """The previous semret wrote this class's files under the kind "neural-lsh", which is now the
    published scheme's: such a file (its parameters are this class's) loads as neural-lsh-knn."""
    _, queries = data
    for name, index in (("fitted", fitted), ("unfitted", KnnNeuralLSHIndex(DIM, n_tables=2))):
        index.save(tmp_path / "new.npz")
        with np.load(tmp_path / "new.npz") as archive:
            arrays = {key: archive[key] for key in archive.files}
        header = json.loads(str(arrays["header"]))
        assert header["kind"] == "neural-lsh-knn"
        arrays["header"] = np.array(json.dumps({**header, "kind": "neural-lsh"}))
        np.savez(tmp_path / f"{name}-old.npz", **arrays)
        loaded = load_index(tmp_path / f"{name}-old.npz")
        assert type(loaded) is KnnNeuralLSHIndex and loaded.kind == "neural-lsh-knn"
        assert loaded.get_params() == index.get_params() and loaded.is_fitted == index.is_fitted
    expected = fitted.search(queries, 10)
    got = load_index(tmp_path / "fitted-old.npz").search(queries, 10)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_an_unfitted_index_saves_and_loads_unfitted(tmp_path: Path) -> None:
    KnnNeuralLSHIndex(DIM, n_tables=2).save(tmp_path / "empty.npz")
    loaded = load_index(tmp_path / "empty.npz")
    assert isinstance(loaded, KnnNeuralLSHIndex) and not loaded.is_fitted
    with pytest.raises(SemretError, match="fitted"):
        loaded.add([0], np.ones((1, DIM)))


def test_fitting_again_rehashes_the_vectors_held(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    vectors, queries = data
    small: dict[str, Any] = {"n_bits": 8, "n_tables": 2, "epochs": 1, "fit_sample": 800}
    refitted = KnnNeuralLSHIndex(DIM, **small).fit(vectors[::-1] * -1.0)
    refitted.add(np.arange(N), vectors)
    refitted.fit(vectors)
    direct = KnnNeuralLSHIndex(DIM, **small).fit(vectors)
    direct.add(np.arange(N), vectors)
    assert np.array_equal(refitted.search(queries, 10)[1], direct.search(queries, 10)[1])
    assert np.array_equal(refitted.last_candidates, direct.last_candidates)


def test_progress_reports_every_stage(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    vectors, _ = data
    seen: dict[str, list[tuple[int, int]]] = {}
    index = KnnNeuralLSHIndex(
        DIM,
        n_tables=2,
        epochs=2,
        fit_sample=500,
        progress=lambda stage, done, total: seen.setdefault(stage, []).append((done, total)),
    )
    index.fit(vectors)
    index.add(np.arange(N), vectors)
    assert seen["neighbours"][-1] == (500, 500)
    assert seen["training"][-1] == (2 * (500 // 125), 2 * (500 // 125))
    assert seen["hashing"][-1] == (N, N)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_bits": 0}, "n_bits"),
        ({"n_bits": 65}, "n_bits"),
        ({"n_tables": 0}, "n_tables"),
        ({"neighbours": 0}, "neighbours"),
        ({"negatives": 0}, "negatives"),
        ({"batch_size": 10}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"hidden": 0}, "hidden"),
        ({"fit_sample": 8}, "fit_sample"),
        ({"balance_weight": -1.0}, "balance_weight"),
        ({"n_bits": 16.0}, "n_bits"),
        ({"n_tables": True}, "n_tables"),
    ],
)
def test_bad_parameters_are_clear_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(SemretError, match=message):
        KnnNeuralLSHIndex(DIM, **params)


def test_too_few_fit_vectors_and_use_before_fit_are_errors(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    vectors, queries = data
    index = KnnNeuralLSHIndex(DIM)
    with pytest.raises(SemretError, match="at least 9 fit vectors"):
        index.fit(vectors[:8])
    with pytest.raises(SemretError, match="fitted"):
        index.add(np.arange(5), vectors[:5])
    with pytest.raises(SemretError, match="empty"):
        index.search(queries, 3)
    with pytest.raises(SemretError, match="fitted"):
        index.hash_keys(vectors[:3])


def test_a_tampered_file_is_a_clear_error(fitted: KnnNeuralLSHIndex, tmp_path: Path) -> None:
    fitted.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["state_weights_0"] = arrays["state_weights_0"][:, :-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SemretError, match="layer 0"):
        load_index(tmp_path / "bad.npz")
