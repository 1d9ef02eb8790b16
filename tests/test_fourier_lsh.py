"""FourierHashNet-style LSH (`semret.indexes.fourier_lsh`): the transform, the sampling and the
asymmetric maps against direct computations; the learned index against chance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from semret.errors import SemretError
from semret.indexes import make_index
from semret.indexes.fourier_lsh import GRID_POINTS, fourier_maps, sample_frequencies, window_transform

T = 3.0


def window(t: np.ndarray) -> np.ndarray:
    """g(t): T + t on [-T, 0], T on [0, T], 0 beyond."""
    return np.where((t >= -T) & (t <= 0), T + t, np.where((t > 0) & (t <= T), T, 0.0))


def test_the_transform_is_the_windows_fourier_transform() -> None:
    for omega in (-37.0, -2.5, 0.3, 1.7, 11.0):
        real = quad(lambda t, w=omega: window(np.array(t)) * np.cos(w * t), -T, T, points=[0.0], limit=500)[0]
        imaginary = quad(lambda t, w=omega: window(np.array(t)) * np.sin(w * t), -T, T, points=[0.0], limit=500)[0]
        r, i = window_transform(np.array([omega]), T)
        assert r[0] == pytest.approx(real, abs=1e-7) and i[0] == pytest.approx(imaginary, abs=1e-7)


def test_frequencies_follow_the_density_and_are_seeded() -> None:
    omega, pdf = sample_frequencies(20_000, T, 100.0, seed=3)
    assert np.all(np.abs(omega) <= 100) and np.all(pdf > 0)
    again, _ = sample_frequencies(20_000, T, 100.0, seed=3)
    np.testing.assert_array_equal(omega, again)
    grid = np.linspace(-100, 100, GRID_POINTS)
    real, imaginary = window_transform(grid, T)
    density = np.abs(real) + np.abs(imaginary)
    total = np.trapezoid(density, grid)
    # the density's normaliser from quad agrees with the grid; the samples' share inside |w| < 5
    # is the density's mass there
    r, i = window_transform(omega[:1], T)
    assert pdf[0] == pytest.approx((abs(r[0]) + abs(i[0])) / total, rel=1e-3)
    inside = np.abs(grid) < 5
    assert np.mean(np.abs(omega) < 5) == pytest.approx(np.trapezoid(density * inside, grid) / total, abs=0.02)


def test_the_maps_inner_product_estimates_the_dominance_score_asymmetrically() -> None:
    rng = np.random.default_rng(0)
    q, c = rng.uniform(-1, 1, (1, 4)), rng.uniform(-1, 1, (1, 4))
    m = 40_000
    omega, pdf = sample_frequencies(4 * m, T, 100.0, seed=1)
    estimate = float((fourier_maps(q, omega, pdf, T, query=True) @ fourier_maps(c, omega, pdf, T, query=False).T)[0, 0])
    exact = float(window(c - q).sum())  # = d T - sum_i max(0, q_i - c_i)
    assert exact == pytest.approx(4 * T - np.maximum(q - c, 0).sum())
    assert estimate / (2 * np.pi * m) == pytest.approx(exact, abs=0.15)
    swapped = float((fourier_maps(c, omega, pdf, T, query=True) @ fourier_maps(q, omega, pdf, T, query=False).T)[0, 0])
    assert swapped / (2 * np.pi * m) == pytest.approx(float(window(q - c).sum()), abs=0.15)
    assert abs(float(window(q - c).sum()) - exact) > 0.5  # the score is asymmetric, and so are the maps


def clustered(n_per: int, n_clusters: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return np.repeat(centres, n_per, axis=0) + 0.3 * rng.normal(size=(n_per * n_clusters, dim))


def test_the_learned_index_finds_neighbours_through_the_query_map() -> None:
    vectors = clustered(60, 8, 24, seed=2)
    params = {"n_components": 12, "samples_per_dim": 10, "n_bits": 32, "n_tables": 6, "bits_per_table": 6,
              "epochs": 20, "train_queries": 300}  # fmt: skip
    index = make_index("fourier-lsh", 24, **params)
    index.fit(vectors)
    index.add(np.arange(len(vectors)), vectors)
    exact = make_index("exact", 24)
    exact.add(np.arange(len(vectors)), vectors)
    queries = vectors[::7] + 0.05
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    share = index.last_candidates.mean() / len(vectors)
    assert recall > 0.9 and share < 0.3  # nearly every neighbour, from under a third of the points
    # items sit in the buckets of their corpus keys; a query looks up the buckets of its query keys
    own = index.tables.lookup_pairs(index.hash_keys(vectors, query=False)[:, :, None])
    assert set(zip(*own, strict=True)) >= {(i, i) for i in range(len(vectors))}
    rows, _ = index.tables.lookup_pairs(index.hash_keys(queries, query=True)[:, :, None])
    np.testing.assert_array_equal(index.last_candidates, np.bincount(rows, minlength=len(queries)))
    other, _ = index.tables.lookup_pairs(index.hash_keys(queries, query=False)[:, :, None])
    assert not np.array_equal(np.bincount(other, minlength=len(queries)), index.last_candidates)
    assert index.loss_history_[-1] < index.loss_history_[0]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(SemretError, match=r"fence_weight .* rank_weight .* at most 1"):
        make_index("fourier-lsh", 8, fence_weight=0.6, rank_weight=0.6)
    with pytest.raises(SemretError, match="bits_per_table"):
        make_index("fourier-lsh", 8, n_bits=4, bits_per_table=8)
    with pytest.raises(SemretError, match="at least 3 fit vectors"):
        make_index("fourier-lsh", 8).fit(np.ones((2, 8)))
