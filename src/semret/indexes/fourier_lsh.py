"""FourierHashNet-style learned LSH (Roy et al., "Locality Sensitive Hashing in Fourier Frequency
Domain For Soft Set Containment Search", NeurIPS 2023), adapted to image features as seed 001 did
("Neural LSH (Method 2)"). Kind ``fourier-lsh``.

Kept from the official code (``Indradyumna/FourierHashNet``; the reading is docs/sources/fourierhashnet.md):

- the Fourier feature maps of the dominance (hinge) similarity: per dimension the window function
  g(t) = T + t on [-T, 0], T on [0, T], 0 beyond (``window`` T = 3), whose transform has real part
  R(w) = 2 sin^2(wT/2) / w^2 + T sin(wT) / w and imaginary part I(w) = sin(wT) / w^2 - T cos(wT) / w;
- the importance sampling of the frequencies: ``samples_per_dim`` (m = 10) frequencies per
  dimension drawn by inverse CDF on a 100,000-point grid of [-``band``, ``band``] (100) from
  p(w) = (|R| + |I|) / N, N its integral (scipy's quad), u ~ U(1e-5, 1);
- the asymmetric maps: queries phi_q = [s_R r cos, s_R r sin, -s_I i sin, s_I i cos] / sqrt(p),
  corpus phi_c = [r cos, r sin, i cos, i sin] / sqrt(p) of theta = x_rep * w (r = sqrt|R|,
  i = sqrt|I|, s the signs), so that <phi_q(q), phi_c(c)> estimates 2 pi m sum_i g(c_i - q_i);
- the hash network shared by both paths, Linear(4 m d -> ``n_bits`` = 64) then tanh, and the
  query-aware loss ``fence_weight`` (0.1) * fence + ``rank_weight`` (C1) * rank + (1 - both) *
  bit balance (C1 is 0 in the official config and swept from 0.05 to 0.85 in its scripts; 0.2
  here, inside that range): fence = mean ||h| - 1|,
  bit balance = sum over bits of |sum over the batch's query and corpus codes| / (codes * bits),
  rank = mean over a query's (positive, negative) pairs of
  max(0, ``margin`` (1) + h_q . h_neg - h_q . h_pos); positives are a training query's top
  N / 2^J corpus items by the exact similarity (N the corpus, J ``bits_per_table``); Adam with
  learning rate 1e-3 and weight decay 5e-4, early stopping on the epoch loss;
- the tables: L = ``n_tables`` = 10 tables of J = 8 of the 64 bits drawn at random (as PermGNN's,
  `semret.indexes.neural_lsh.draw_bit_subsets`), one bucket per table looked up with the query's
  code (query path), the union of the buckets re-ranked by the exact similarity.

What the adaptation changes, and why:

- the features are L2-normalised and first projected on their ``n_components`` (64) principal
  axes (scikit-learn's PCA, fitted on the fit sample): a 4 m d Fourier map of 1,280-d features
  (51,200 values per point at m = 10) would not fit a CPU's budget. The projections are scaled
  by one factor, so that the first axis's standard deviation is ``input_scale`` (3, the window
  T): the differences then use the window, where unscaled unit vectors' coordinates (spreads
  well below 1) would leave the hinge term drowned by the constant d T and the maps' sampling
  noise (measured in docs/indexes.md: the maps' inner products then do not follow the hinge score);
- the exact similarity is the cosine (semret's contract and seed 001's ranking), so the positives
  are a training query's nearest items by cosine and candidates are re-ranked by cosine; the
  Fourier map is the hash network's input, whose inner products follow the dominance score of the
  projected features (the official ranks and trains with the hinge score itself);
- there is no stage B (the official's 10-d trained feature maps, fitted with BCE on labelled query
  / corpus pairs, which images without query relevance labels do not have): the hash network takes
  the Fourier maps themselves, as the official's commented-out variant of the network does; the
  maps are scaled to unit norm (their norm is the same for every point, sqrt(d m N));
- the training queries are ``train_queries`` of the fit vectors (the corpus sampled to
  ``fit_sample``), each against its positives and ``negatives`` (64) other items drawn at random
  (the official batches one query against the whole corpus), ``queries_per_batch`` queries a step.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from semret.core.cosine import normalise
from semret.core.params import check_is_fitted
from semret.core.validation import check_int, check_number, check_seed
from semret.errors import SemretError
from semret.indexes.base import VectorIndex
from semret.indexes.buckets import MAX_BITS, BucketTables, bucket_keys
from semret.indexes.learned import EarlyStopping, Progress, nearest_others, one_thread
from semret.indexes.neural_lsh import MAX_CODE_BITS, draw_bit_subsets

if TYPE_CHECKING:
    import torch

__all__ = ["FourierLSHIndex", "fourier_maps", "sample_frequencies", "window_transform"]

#: The inverse CDF's grid (the official ``linspace(a, b, 100000)``; 0 is not on it).
GRID_POINTS = 100_000
#: Vectors mapped and hashed at once (bounds the (vectors, 4 m d) float32 maps in memory).
_HASH_CHUNK = 4096


def window_transform(omega: npt.ArrayLike, window: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(R, I): the real and imaginary parts of the Fourier transform of the window function g of
    width T = ``window`` (module docstring) at the frequencies ``omega`` (none of them 0)."""
    w = np.asarray(omega, dtype=np.float64)
    t = float(window)
    real = 2 * np.sin(w * t / 2) ** 2 / w**2 + t * np.sin(w * t) / w
    imaginary = np.sin(w * t) / w**2 - t * np.cos(w * t) / w
    return real, imaginary


def sample_frequencies(
    n: int, window: float, band: float, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``n`` frequencies drawn from p(w) = (|R(w)| + |I(w)|) / N on [-band, band] by inverse CDF,
    as the official ``generate_samples``; returns (w, p(w))."""
    from scipy.integrate import quad

    def density(w: Any) -> Any:
        real, imaginary = window_transform(w, window)
        return np.abs(real) + np.abs(imaginary)

    with warnings.catch_warnings():  # quad reports its round-off on this oscillating density; the
        warnings.simplefilter("ignore")  # value agrees with the grid's trapezoid sum (tested)
        total, _ = quad(density, -band, band, points=[0.0], limit=10_000)
    grid = np.linspace(-band, band, GRID_POINTS)
    cdf = np.cumsum(density(grid))
    cdf /= cdf[-1]
    u = np.random.default_rng(seed).uniform(1e-5, 1.0, n)
    omega = np.interp(u, cdf, grid)
    omega = np.where(np.abs(omega) < 1e-9, 1e-9, omega)  # never exactly 0 (0 / 0 in R and I)
    return omega, density(omega) / total


def fourier_maps(
    x: npt.NDArray[np.float64],
    omega: npt.NDArray[np.float64],
    pdf: npt.NDArray[np.float64],
    window: float,
    query: bool,
) -> npt.NDArray[np.float64]:
    """The asymmetric Fourier maps (n, 4 m d) of (n, d) points, query or corpus side (module
    docstring); ``omega`` and ``pdf`` hold m frequencies per dimension, dimension by dimension."""
    m = len(omega) // x.shape[1]
    theta = np.repeat(x, m, axis=1) * omega
    real, imaginary = window_transform(omega, window)
    r, i = np.sqrt(np.abs(real) / pdf), np.sqrt(np.abs(imaginary) / pdf)
    cos, sin = np.cos(theta), np.sin(theta)
    if not query:
        return np.hstack([r * cos, r * sin, i * cos, i * sin])
    s_r, s_i = np.sign(real), np.sign(imaginary)
    return np.hstack([s_r * r * cos, s_r * r * sin, -s_i * i * sin, s_i * i * cos])


class FourierLSHIndex(VectorIndex):
    """FourierHashNet's query-aware learned hash on Fourier maps of the features, adapted to
    images (module docstring): one ``n_bits`` code per point, ``n_tables`` tables of
    ``bits_per_table`` of its bits, queries hashed through the query map, items through the corpus map."""

    kind = "fourier-lsh"
    needs_fit = True
    fitted_attribute = "weights_"
    _unsaved_params = frozenset({"progress"})

    def __init__(
        self,
        dim: int,
        n_components: int = 64,
        input_scale: float = 3.0,
        samples_per_dim: int = 10,
        window: float = 3.0,
        band: float = 100.0,
        n_bits: int = 64,
        n_tables: int = 10,
        bits_per_table: int = 8,
        fence_weight: float = 0.1,
        rank_weight: float = 0.2,
        margin: float = 1.0,
        learning_rate: float = 1e-3,
        weight_decay: float = 5e-4,
        epochs: int = 30,
        patience: int | None = 5,
        min_delta: float = 0.005,
        train_queries: int = 1000,
        negatives: int = 64,
        queries_per_batch: int = 16,
        fit_sample: int = 5000,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(dim)
        self.n_components = check_int("n_components", n_components, 1)
        self.input_scale = check_number("input_scale", input_scale, 0, low_open=True)
        self.samples_per_dim = check_int("samples_per_dim", samples_per_dim, 1)
        self.window = check_number("window", window, 0, low_open=True)
        self.band = check_number("band", band, 0, low_open=True)
        self.n_bits = check_int("n_bits", n_bits, 1, MAX_CODE_BITS)
        self.n_tables = check_int("n_tables", n_tables, 1)
        self.bits_per_table = check_int("bits_per_table", bits_per_table, 1, MAX_BITS)
        if self.bits_per_table > self.n_bits:
            raise SemretError(f"bits_per_table ({bits_per_table}) must be at most n_bits ({n_bits})")
        self.fence_weight = check_number("fence_weight", fence_weight, 0, 1)
        self.rank_weight = check_number("rank_weight", rank_weight, 0, 1)
        if self.fence_weight + self.rank_weight > 1:
            raise SemretError(
                f"fence_weight ({fence_weight}) + rank_weight ({rank_weight}) must be at most 1: the bit "
                "balance is weighted 1 minus their sum"
            )
        self.margin = check_number("margin", margin, 0)
        self.learning_rate = check_number("learning_rate", learning_rate, 0, low_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, 0)
        self.epochs = check_int("epochs", epochs, 1)
        self.patience = None if patience is None else check_int("patience", patience, 0)
        self.min_delta = check_number("min_delta", min_delta, 0)
        self.train_queries = check_int("train_queries", train_queries, 1)
        self.negatives = check_int("negatives", negatives, 1)
        self.queries_per_batch = check_int("queries_per_batch", queries_per_batch, 1)
        self.fit_sample = check_int("fit_sample", fit_sample, 3)
        self.seed = check_seed(seed)
        self.progress = progress
        #: The PCA's mean (d,) and (components, d) axes, float64; None before fit.
        self.mean_: npt.NDArray[np.float64] | None = None
        self.components_: npt.NDArray[np.float64] | None = None
        #: The m frequencies of each component and their densities, (components * m,).
        self.omega_: npt.NDArray[np.float64] | None = None
        self.pdf_: npt.NDArray[np.float64] | None = None
        #: (4 m components, H) weights and (H,) bias of the hash layer (float32).
        self.weights_: npt.NDArray[np.float32] | None = None
        self.bias_: npt.NDArray[np.float32] | None = None
        self.bit_subsets_: npt.NDArray[np.int64] | None = None
        self.loss_history_: list[float] = []
        self.tables = BucketTables(self.n_tables)

    # --- the maps -------------------------------------------------------------------------------

    def maps(self, unit: npt.NDArray[np.float32], query: bool) -> npt.NDArray[np.float32]:
        """The unit-norm Fourier maps (n, 4 m components) of unit vectors, query or corpus side."""
        check_is_fitted(self, "omega_")
        assert self.mean_ is not None and self.components_ is not None
        assert self.omega_ is not None and self.pdf_ is not None
        projected = (unit.astype(np.float64) - self.mean_) @ self.components_.T
        mapped = fourier_maps(projected, self.omega_, self.pdf_, self.window, query)
        real, imaginary = window_transform(self.omega_, self.window)
        norm = np.sqrt(np.sum((np.abs(real) + np.abs(imaginary)) / self.pdf_))  # every map's norm
        return (mapped / norm).astype(np.float32)

    # --- training ------------------------------------------------------------------------------

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        from sklearn.decomposition import PCA

        n = len(vectors)
        if n < 3:
            raise SemretError(f"a {self.kind} index needs at least 3 fit vectors, got {n}")
        rng = np.random.default_rng(self.seed)
        chosen = np.arange(n) if n <= self.fit_sample else np.sort(rng.choice(n, self.fit_sample, replace=False))
        sample = vectors[chosen]
        components = min(self.n_components, self.dim, len(sample) - 1)
        pca = PCA(components, random_state=self.seed).fit(sample.astype(np.float64))
        # one scale for every axis (distances keep their shape): the first axis's spread becomes input_scale
        spread = float(np.sqrt(max(pca.explained_variance_[0], 1e-12)))
        self.mean_ = pca.mean_.astype(np.float64)
        self.components_ = (pca.components_ / spread * self.input_scale).astype(np.float64)
        self.omega_, self.pdf_ = sample_frequencies(
            components * self.samples_per_dim, self.window, self.band, self.seed
        )
        query_maps, corpus_maps = self.maps(sample, query=True), self.maps(sample, query=False)
        positives = self._positives(sample)
        queries = np.sort(rng.choice(len(sample), min(self.train_queries, len(sample)), replace=False))
        with one_thread():
            self.weights_, self.bias_ = self._train(query_maps, corpus_maps, queries, positives[queries])
        self.bit_subsets_ = draw_bit_subsets(self.n_bits, self.n_tables, self.bits_per_table, self.seed)
        self.tables = BucketTables(self.n_tables)
        if self.ntotal:  # fitted again after vectors were added: hash them with the new code
            self.tables.add(self._keys(self.store.vectors(), query=False), np.arange(self.ntotal, dtype=np.int64))

    def _positives(self, sample: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """(n, P): each sample point's P = max(1, n / 2^J) nearest other points by cosine."""
        return nearest_others(sample, min(max(1, len(sample) // 2**self.bits_per_table), len(sample) - 1))

    def _train(
        self,
        query_maps: npt.NDArray[np.float32],
        corpus_maps: npt.NDArray[np.float32],
        queries: npt.NDArray[np.int64],
        positives: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Adam on the query-aware loss (module docstring), ``queries_per_batch`` training queries a
        step, each with its positives and ``negatives`` random others; early stopping on the epoch loss."""
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        n, features = corpus_maps.shape
        bound = 1.0 / features**0.5  # nn.Linear's initialisation
        weights = ((torch.rand(features, self.n_bits, generator=generator) * 2 - 1) * bound).requires_grad_(True)
        bias = ((torch.rand(self.n_bits, generator=generator) * 2 - 1) * bound).requires_grad_(True)
        optimiser = torch.optim.Adam([weights, bias], lr=self.learning_rate, weight_decay=self.weight_decay)
        q_maps, c_maps = torch.from_numpy(query_maps), torch.from_numpy(corpus_maps)
        query_rows, pos_rows = torch.from_numpy(queries), torch.from_numpy(positives)
        stopper = EarlyStopping(self.patience, self.min_delta)
        self.loss_history_ = []
        for epoch in range(self.epochs):
            order = torch.randperm(len(query_rows), generator=generator)
            total = 0.0
            for start in range(0, len(order), self.queries_per_batch):
                batch = order[start : start + self.queries_per_batch]
                query, pos = query_rows[batch], pos_rows[batch]
                neg = torch.randint(n, (len(batch), self.negatives), generator=generator)
                # a drawn "negative" that is the query or one of its positives takes no part
                valid = (neg != query[:, None]) & ~(neg[:, :, None] == pos[:, None, :]).any(dim=2)
                h_q = torch.tanh(q_maps[query] @ weights + bias)
                h_pos = torch.tanh(c_maps[pos] @ weights + bias)
                h_neg = torch.tanh(c_maps[neg] @ weights + bias)
                loss = self._loss(h_q, h_pos, h_neg, valid)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
            self.loss_history_.append(total)
            if self.progress:
                self.progress("training", epoch + 1, self.epochs)
            if stopper.stop(total):
                break
        return weights.detach().numpy().copy(), bias.detach().numpy().copy()

    def _loss(self, h_q: torch.Tensor, h_pos: torch.Tensor, h_neg: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """fence_weight * fence + rank_weight * rank + (1 - both) * bit balance of a batch's codes."""
        import torch

        codes = torch.cat([h_q, h_pos.reshape(-1, self.n_bits), h_neg.reshape(-1, self.n_bits)])
        fence = (codes.abs() - 1).abs().mean()
        balance = codes.sum(dim=0).abs().sum() / codes.numel()
        s_pos = torch.einsum("qh,qph->qp", h_q, h_pos)
        s_neg = torch.einsum("qh,qnh->qn", h_q, h_neg)
        hinge = torch.relu(self.margin + s_neg[:, None, :] - s_pos[:, :, None])  # (q, pos, neg)
        mask = valid[:, None, :].expand_as(hinge)
        rank = hinge[mask].mean() if bool(mask.any()) else hinge.sum() * 0
        bit_weight = 1.0 - self.fence_weight - self.rank_weight
        return self.fence_weight * fence + self.rank_weight * rank + bit_weight * balance

    # --- hashing -------------------------------------------------------------------------------

    def hash_keys(self, vectors: npt.ArrayLike, query: bool) -> npt.NDArray[np.uint64]:
        """(n, L) bucket keys of vectors (normalised first), through the query or the corpus map."""
        return self._keys(normalise(vectors, self.dim), query)

    def code_bits(self, vectors: npt.ArrayLike, query: bool = False) -> npt.NDArray[np.bool_]:
        """(n, H) bits of each vector's code (normalised first), through the corpus map unless ``query``."""
        check_is_fitted(self, "weights_")
        assert self.weights_ is not None and self.bias_ is not None
        unit = normalise(vectors, self.dim)
        out = np.empty((len(unit), self.n_bits), dtype=np.bool_)
        for start in range(0, len(unit), _HASH_CHUNK):
            maps = self.maps(unit[start : start + _HASH_CHUNK], query)
            out[start : start + len(maps)] = maps.astype(np.float64) @ self.weights_.astype(np.float64) + self.bias_ > 0
        return out

    def _keys(self, unit: npt.NDArray[np.float32], query: bool) -> npt.NDArray[np.uint64]:
        check_is_fitted(self, "weights_")
        assert self.weights_ is not None and self.bias_ is not None and self.bit_subsets_ is not None
        reversed_subsets = self.bit_subsets_[:, ::-1]  # the first chosen bit the most significant
        keys = np.empty((len(unit), self.n_tables), dtype=np.uint64)
        for start in range(0, len(unit), _HASH_CHUNK):
            maps = self.maps(unit[start : start + _HASH_CHUNK], query)
            bits = maps.astype(np.float64) @ self.weights_.astype(np.float64) + self.bias_ > 0
            keys[start : start + len(bits)] = bucket_keys(bits[:, reversed_subsets])
        return keys

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self.tables.add(self._keys(vectors, query=False), positions)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self.tables.renumber(moved)

    def _candidate_pairs(self, queries: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The union of the query's bucket in each table (one probe a table, as the official)."""
        return self.tables.lookup_pairs(self._keys(queries, query=True)[:, :, None])

    # --- files ---------------------------------------------------------------------------------

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        if self.weights_ is None:
            return {}
        assert self.mean_ is not None and self.components_ is not None and self.omega_ is not None
        assert self.pdf_ is not None and self.bias_ is not None and self.bit_subsets_ is not None
        return {
            "mean": self.mean_,
            "components": self.components_,
            "omega": self.omega_,
            "pdf": self.pdf_,
            "weights": self.weights_,
            "bias": self.bias_,
            "bit_subsets": self.bit_subsets_,
        }

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if not state:
            return
        arrays = {name: state.get(name) for name in ("mean", "components", "omega", "pdf", "weights", "bias")}
        for name, array in arrays.items():
            if array is None or array.dtype.kind != "f" or not np.isfinite(array).all():
                raise SemretError(f"corrupt {self.kind} index file: no finite {name}")
        mean, components, omega, pdf, weights, bias = (arrays[name] for name in arrays)
        assert mean is not None and components is not None and omega is not None and pdf is not None
        assert weights is not None and bias is not None
        c = len(components)
        shapes_ok = (
            mean.shape == (self.dim,)
            and components.shape == (c, self.dim)
            and omega.shape == pdf.shape == (c * self.samples_per_dim,)
            and weights.shape == (4 * c * self.samples_per_dim, self.n_bits)
            and bias.shape == (self.n_bits,)
            and (pdf > 0).all()
        )
        subsets = state.get("bit_subsets")
        if (
            not shapes_ok
            or subsets is None
            or subsets.shape != (self.n_tables, self.bits_per_table)
            or subsets.dtype.kind not in "iu"
            or (subsets.size and (subsets.min() < 0 or subsets.max() >= self.n_bits))
        ):
            raise SemretError(f"corrupt {self.kind} index file: its arrays do not fit its parameters")
        self.mean_, self.components_ = mean.astype(np.float64), components.astype(np.float64)
        self.omega_, self.pdf_ = omega.astype(np.float64), pdf.astype(np.float64)
        self.weights_, self.bias_ = weights.astype(np.float32), bias.astype(np.float32)
        self.bit_subsets_ = subsets.astype(np.int64)
