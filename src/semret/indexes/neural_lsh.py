"""Neural LSH as published: PermGNN's learned hash (Roy, De & Chakrabarti, "Adversarial
Permutation Guided Node Representations for Link Prediction", AAAI 2021, arXiv 2012.08974), on
image features. Kind ``neural-lsh``; semret's earlier reading is ``neural-lsh-knn``.

Followed from the official code (github.com/Indradyumna/PermGNN, ``minmax/hashing_main.py`` and
``minmax/locality_sensitive_hashing.py``):

- the code (``HashCodeGenerator.forward``): ONE learned H-bit code per point,
  ``h(x) = tanh(W x + b)``, a linear layer then tanh; W starts N(0, 1) (``nn.init.normal_``), b as
  torch's ``nn.Linear`` does, U(-1/sqrt(d), 1/sqrt(d)). H = ``n_bits`` = 16 (``--HASHCODE_DIM``).
- the loss (``HashCodeGenerator.computeLoss`` and the loop of ``run_graph_lp_hash``), on a batch
  of B points: ``balance_weight / B * sum_i |sum_b h_ib|`` (each code as many +1 as -1 bits,
  ``loss1``), ``+ quantisation_weight / B * sum_i sum_b ||h_ib| - 1|`` (bits pushed to +-1,
  ``loss2``), ``+ (1 - balance_weight - quantisation_weight) / B^2 * sum_{i != j non-neighbours}
  |h_i . h_j|`` (codes of non-neighbour pairs decorrelated, ``loss3``). The weights are
  ``--LAMBDA1`` = ``--LAMBDA2`` = 0.01; plain SGD with learning rate 0.05 (``--LEARNING_RATE_FUNC``);
  the points shuffled every epoch; at most ``--NUM_EPOCHS`` = 200 epochs, with the official early
  stopping (``EarlyStoppingModule(av, 50, 0.001)`` on minus the epoch's summed loss: stop once it has
  not improved by 0.001 for more than 50 epochs). The official ``run_graph_lp_hash`` does one or the
  other (early stopping with no epoch cap when a validation split is held out, its default; the
  fixed epochs without one); semret caps the early-stopped training at 200 epochs.
- the tables (``LSH.init_hash_functions``, ``assign_bucket``, ``bucketify``): L = ``n_tables`` = 10
  tables, each keyed on J = ``bits_per_table`` = 8 distinct bits of the one code, chosen at random
  (the first J of the bit positions shuffled again for each table), 2^J buckets a table; a bit is
  1 where ``sign(h) > 0`` (``max(sign(h), 0)``), the table's first chosen bit the most significant
  of the key. Candidates (``get_hash_lp_scores``): the points sharing a bucket, here the union of
  the query's L buckets, ranked by cosine (``compute_lp_scores``).

Adapted for image features (PermGNN hashes the nodes of a graph, whose neighbours are its edges;
``init_non_nbr_mat`` marks every pair that is not a training edge as a non-neighbour pair):

- the graph is the cosine kNN graph of the fit vectors (``neighbours_by="cosine"``): i and j are
  neighbours when one is among the other's ``neighbours`` nearest (exact cosine), non-neighbours
  otherwise; or, with ``neighbours_by="label"``, when they have the same label (``fit`` then needs
  labels). The input is the L2-normalised feature vector (PermGNN's: the node embedding).
- ``loss3`` over ``negatives`` = 10 non-neighbours per point sampled (without replacement, uniformly)
  from its batch of ``batch_size`` = 125, as the assignment citing the paper did ("sampled 10
  negatives for each datapoint, from batches of size 125"), divided by B * negatives (the mean
  over the sampled pairs when every point has that many non-neighbours in its batch; a point with
  fewer gives all it has, and the divisor stays B * negatives, as the official 1 / B^2 stays
  whatever the number of non-neighbour pairs);
  ``negatives=None`` takes every non-neighbour pair of the batch, divided by B^2, as the official
  code does. (The official default batch is 128, ``--BATCH_SIZE``.)
- at most ``fit_sample`` fit vectors (a seeded random sample) train the code, so that the exact
  kNN graph stays affordable; the official code trains on every node.
- the training is seeded (a local ``torch.Generator`` for the initial weights, the shuffles and the
  negatives; numpy's ``default_rng(seed)`` for the sample and the bit subsets), on the CPU, one
  thread: the same seed gives the same code, tables and results on the same machine.

Only the sign of ``W x + b`` matters after training, so hashing is numpy (float64): a loaded index
needs no torch to search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from semret.core.cosine import normalise
from semret.core.params import check_is_fitted
from semret.core.validation import check_choice, check_int, check_number, check_optional_int, check_seed
from semret.errors import SemretError
from semret.indexes.base import VectorIndex
from semret.indexes.buckets import MAX_BITS, BucketTables, bucket_keys
from semret.indexes.learned import EarlyStopping as _EarlyStopping
from semret.indexes.learned import Progress, nearest_others, one_thread

if TYPE_CHECKING:  # torch is imported where it trains: slow to import, and searching needs none
    import torch

__all__ = ["NeuralLSHIndex", "loss_terms", "weighted_loss"]

#: The largest code: as `SemanticHasher`'s (the tables key on at most 64 of its bits).
MAX_CODE_BITS = 1024
#: Vectors hashed at once (bounds the float64 (vectors, H) projections in memory).
_HASH_CHUNK = 1 << 16
NEIGHBOURS_BY = ("cosine", "label")


class NeuralLSHIndex(VectorIndex):
    """PermGNN's hashing: one learned ``n_bits`` code, ``n_tables`` tables of ``bits_per_table`` of
    its bits; see the module docstring for the code, the loss and what was adapted."""

    kind = "neural-lsh"
    needs_fit = True
    fitted_attribute = "weights_"
    _unsaved_params = frozenset({"progress"})

    def __init__(
        self,
        dim: int,
        n_bits: int = 16,
        n_tables: int = 10,
        bits_per_table: int = 8,
        balance_weight: float = 0.01,
        quantisation_weight: float = 0.01,
        learning_rate: float = 0.05,
        epochs: int = 200,
        patience: int | None = 50,
        min_delta: float = 0.001,
        batch_size: int = 125,
        negatives: int | None = 10,
        neighbours: int = 10,
        neighbours_by: str = "cosine",
        fit_sample: int = 20_000,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(dim)
        self.n_bits = check_int("n_bits", n_bits, 1, MAX_CODE_BITS)
        self.n_tables = check_int("n_tables", n_tables, 1)
        self.bits_per_table = check_int("bits_per_table", bits_per_table, 1, MAX_BITS)
        if self.bits_per_table > self.n_bits:
            raise SemretError(
                f"bits_per_table ({bits_per_table}) must be at most n_bits ({n_bits}): each table keys on "
                "bits_per_table of the code's n_bits bits"
            )
        self.balance_weight = check_number("balance_weight", balance_weight, 0, 1)
        self.quantisation_weight = check_number("quantisation_weight", quantisation_weight, 0, 1)
        if self.balance_weight + self.quantisation_weight > 1:
            raise SemretError(
                f"balance_weight ({balance_weight}) + quantisation_weight ({quantisation_weight}) must be at "
                "most 1: the decorrelation term is weighted 1 minus their sum"
            )
        self.learning_rate = check_number("learning_rate", learning_rate, 0, low_open=True)
        self.epochs = check_int("epochs", epochs, 1)
        self.patience = check_optional_int("patience", patience, 0)
        self.min_delta = check_number("min_delta", min_delta, 0)
        self.batch_size = check_int("batch_size", batch_size, 2)
        self.negatives = check_optional_int("negatives", negatives, 1)
        if self.negatives is not None and self.negatives >= self.batch_size:
            raise SemretError(
                f"negatives ({negatives}) must be less than batch_size ({batch_size}): they are drawn from the batch"
            )
        self.neighbours = check_int("neighbours", neighbours, 1)
        self.neighbours_by = check_choice("neighbours_by", neighbours_by, NEIGHBOURS_BY)
        self.fit_sample = check_int("fit_sample", fit_sample, 2)
        self.seed = check_seed(seed)
        self.progress = progress
        #: (dim, H) weights and (H,) bias of the code's linear layer (float32); None before fit.
        self.weights_: npt.NDArray[np.float32] | None = None
        self.bias_: npt.NDArray[np.float32] | None = None
        #: (L, J) bit positions of the code that key each table, the first the most significant.
        self.bit_subsets_: npt.NDArray[np.int64] | None = None
        #: The summed batch losses of each epoch trained (the official ``totalEpochLoss``).
        self.loss_history_: list[float] = []
        self.tables = BucketTables(self.n_tables)

    # --- training ------------------------------------------------------------------------------

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        """Train the code on (a sample of) the unit vectors, draw the tables' bits, re-hash what is held."""
        import torch

        if self.neighbours_by == "label" and labels is None:
            raise SemretError(f"a {self.kind} index with neighbours_by='label' needs labels to fit")
        chosen = self._sample(len(vectors))
        sample = vectors[chosen]
        if self.neighbours_by == "label":
            assert labels is not None
            graph: _Graph = _LabelGraph(labels[chosen])
        else:
            graph = _KnnGraph(self._neighbour_lists(sample))
        with one_thread():
            weights, bias = self._train(torch.from_numpy(np.ascontiguousarray(sample)), graph)
        self.weights_, self.bias_ = weights, bias
        self.bit_subsets_ = draw_bit_subsets(self.n_bits, self.n_tables, self.bits_per_table, self.seed)
        self.tables = BucketTables(self.n_tables)
        if self.ntotal:  # fitted again after vectors were added: hash them with the new code
            self.tables.add(self._keys(self.store.vectors()), np.arange(self.ntotal, dtype=np.int64))

    def _sample(self, n: int) -> npt.NDArray[np.int64]:
        """Positions of the fit vectors trained on: all, or ``fit_sample`` drawn at random (seeded)."""
        if self.neighbours_by == "cosine" and n < self.neighbours + 1:
            raise SemretError(
                f"a {self.kind} index with {self.neighbours} neighbours needs at least {self.neighbours + 1} "
                f"fit vectors, got {n}"
            )
        if n <= self.fit_sample:
            return np.arange(n, dtype=np.int64)
        return np.sort(np.random.default_rng(self.seed).choice(n, self.fit_sample, replace=False))

    def _neighbour_lists(self, sample: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """(n, neighbours): each point's nearest other points (exact cosine, ties by position)."""
        return nearest_others(sample, self.neighbours, self.progress)

    def _train(self, data: torch.Tensor, graph: _Graph) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """SGD on the PermGNN loss, as ``run_graph_lp_hash``: shuffled batches, every point once an
        epoch (the last batch may be smaller), stopped after ``epochs`` or by the official rule. The
        update ``p -= lr * grad`` is written out: `torch.optim` would import torch._dynamo (seconds)."""
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        n = len(data)
        weights = torch.randn(self.dim, self.n_bits, generator=generator)  # nn.init.normal_
        bound = 1.0 / self.dim**0.5  # nn.Linear's bias initialisation
        bias = (torch.rand(self.n_bits, generator=generator) * 2 - 1) * bound
        parameters = (weights.requires_grad_(True), bias.requires_grad_(True))
        stopper = _EarlyStopping(self.patience, self.min_delta)
        self.loss_history_ = []
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                codes = torch.tanh(data[batch] @ weights + bias)
                non_neighbours = torch.from_numpy(graph.non_neighbours(batch.numpy()))
                rows, columns = self._pairs(non_neighbours, generator)
                balance, quantisation, decorrelation = loss_terms(codes, rows, columns)
                loss = weighted_loss(
                    balance,
                    quantisation,
                    decorrelation,
                    len(batch),
                    len(batch) * len(batch) if self.negatives is None else len(batch) * self.negatives,
                    self.balance_weight,
                    self.quantisation_weight,
                )
                gradients = torch.autograd.grad(loss, parameters)
                with torch.no_grad():  # plain SGD, as torch.optim.SGD(lr) without momentum
                    for parameter, gradient in zip(parameters, gradients, strict=True):
                        parameter.sub_(gradient, alpha=self.learning_rate)
                total += float(loss.detach())
            self.loss_history_.append(total)
            if self.progress:
                self.progress("training", epoch + 1, self.epochs)
            if stopper.stop(total):
                break
        return weights.detach().numpy().copy(), bias.detach().numpy().copy()

    def _pairs(self, non_neighbours: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch positions (rows, columns) of the pairs ``loss3`` sums over: every non-neighbour pair,
        or ``negatives`` non-neighbours of each point drawn uniformly without replacement (fewer
        where the batch holds fewer)."""
        import torch

        if self.negatives is None:
            rows, columns = torch.nonzero(non_neighbours, as_tuple=True)
            return rows, columns
        size = len(non_neighbours)
        keys = torch.rand((size, size), generator=generator).masked_fill_(~non_neighbours, -1.0)
        drawn = min(self.negatives, size)
        picked_keys, picked = torch.topk(keys, drawn, dim=1)
        valid = picked_keys >= 0
        rows = torch.arange(size)[:, None].expand(-1, drawn)
        return rows[valid], picked[valid]

    # --- hashing -------------------------------------------------------------------------------

    def codes(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n, H) codes ``tanh(W x + b)`` of (n, dim) vectors, normalised first (float64)."""
        return np.tanh(self._projections(normalise(vectors, self.dim)))

    def code_bits(self, vectors: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """(n, H) bits of the one code of each vector (normalised first): ``tanh(W x + b) > 0``."""
        return np.asarray(self._projections(normalise(vectors, self.dim)) > 0)

    def hash_keys(self, vectors: npt.ArrayLike) -> npt.NDArray[np.uint64]:
        """(n, L) bucket keys of (n, dim) vectors, normalised first: the bucket of each in each table."""
        return self._keys(normalise(vectors, self.dim))

    def _projections(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        check_is_fitted(self, "weights_")
        assert self.weights_ is not None and self.bias_ is not None
        return unit.astype(np.float64) @ self.weights_.astype(np.float64) + self.bias_.astype(np.float64)

    def _keys(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
        """(n, L) keys of unit vectors: table t's bits ``sign(h) > 0`` at ``bit_subsets_[t]``, packed
        first bit most significant (``LSH.assign_bucket``)."""
        check_is_fitted(self, "weights_")
        assert self.bit_subsets_ is not None
        # bucket_keys makes the last bit the most significant: the subsets reversed give the official order.
        reversed_subsets = self.bit_subsets_[:, ::-1]
        keys = np.empty((len(unit), self.n_tables), dtype=np.uint64)
        for start in range(0, len(unit), _HASH_CHUNK):
            bits = self._projections(unit[start : start + _HASH_CHUNK]) > 0  # tanh keeps the sign
            keys[start : start + len(bits)] = bucket_keys(bits[:, reversed_subsets])
        return keys

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self.tables.add(self._keys(vectors), positions)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self.tables.renumber(moved)

    def _candidate_pairs(self, queries: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The positions in the query's bucket of each table: their union, each once."""
        return self.tables.lookup_pairs(self._keys(queries)[:, :, None])

    # --- files ---------------------------------------------------------------------------------

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        if self.weights_ is None or self.bias_ is None or self.bit_subsets_ is None:
            return {}
        return {"weights": self.weights_, "bias": self.bias_, "bit_subsets": self.bit_subsets_}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if not state:
            return
        weights, bias, subsets = state.get("weights"), state.get("bias"), state.get("bit_subsets")
        shapes = {"weights": (self.dim, self.n_bits), "bias": (self.n_bits,)}
        for name, array in (("weights", weights), ("bias", bias)):
            if array is None or array.shape != shapes[name] or array.dtype.kind != "f" or not np.isfinite(array).all():
                got = "none" if array is None else f"{array.dtype} {array.shape}"
                raise SemretError(f"corrupt {self.kind} index file: expected {shapes[name]} finite {name}, got {got}")
        expected = (self.n_tables, self.bits_per_table)
        if (
            subsets is None
            or subsets.shape != expected
            or subsets.dtype.kind not in "iu"
            or (subsets.size and (subsets.min() < 0 or subsets.max() >= self.n_bits))
            or any(len(set(row.tolist())) != len(row) for row in subsets)
        ):
            got = "none" if subsets is None else f"{subsets.dtype} {subsets.shape}"
            raise SemretError(
                f"corrupt {self.kind} index file: expected {expected} distinct bit positions below {self.n_bits}, "
                f"got {got}"
            )
        assert weights is not None and bias is not None
        self.weights_, self.bias_ = weights.astype(np.float32), bias.astype(np.float32)
        self.bit_subsets_ = subsets.astype(np.int64)


# --- the loss, as PermGNN's computeLoss ------------------------------------------------------------


def loss_terms(
    codes: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PermGNN's three sums on a batch of (B, H) codes (``HashCodeGenerator.computeLoss``):
    ``loss1 = sum_i |sum_b h_ib|`` (balance), ``loss2 = sum_i sum_b ||h_ib| - 1|`` (quantisation)
    and ``loss3 = sum_p |h_rows[p] . h_columns[p]|`` over the given non-neighbour pairs
    (decorrelation; the official code sums every ordered non-neighbour pair i != j)."""
    import torch

    balance = codes.sum(dim=1).abs().sum()
    quantisation = (codes.abs() - 1).abs().sum()
    decorrelation = (codes[rows] * codes[columns]).sum(dim=1).abs().sum() if len(rows) else torch.zeros(())
    return balance, quantisation, decorrelation


def weighted_loss(
    balance: torch.Tensor,
    quantisation: torch.Tensor,
    decorrelation: torch.Tensor,
    batch: int,
    pairs: int,
    balance_weight: float,
    quantisation_weight: float,
) -> torch.Tensor:
    """The batch loss of ``run_graph_lp_hash``: ``LAMBDA1 / B * loss1 + LAMBDA2 / B * loss2 +
    (1 - LAMBDA1 - LAMBDA2) / pairs * loss3``, where the official ``pairs`` is B^2."""
    decorrelation_weight = 1.0 - balance_weight - quantisation_weight
    return (
        balance_weight / batch * balance
        + quantisation_weight / batch * quantisation
        + decorrelation_weight / pairs * decorrelation
    )


def draw_bit_subsets(n_bits: int, n_tables: int, bits_per_table: int, seed: int) -> npt.NDArray[np.int64]:
    """(L, J) bit positions, as ``LSH.init_hash_functions``: the positions 0..H-1 shuffled again for
    each table (numpy ``default_rng(seed)``), its first J taken."""
    rng = np.random.default_rng(seed)
    positions = np.arange(n_bits, dtype=np.int64)
    subsets = np.empty((n_tables, bits_per_table), dtype=np.int64)
    for table in range(n_tables):
        rng.shuffle(positions)
        subsets[table] = positions[:bits_per_table]
    return subsets


# --- the neighbour graph ---------------------------------------------------------------------------


class _Graph(Protocol):
    """Which pairs of a batch are non-neighbours (PermGNN's ``non_nbr_mat``), the diagonal excluded."""

    def non_neighbours(self, batch: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]: ...


class _KnnGraph:
    """The symmetric cosine kNN graph: i, j neighbours when one is among the other's k nearest."""

    def __init__(self, lists: npt.NDArray[np.int64]) -> None:
        self.lists = lists
        #: each point's position in the current batch (-1: not in it), reset after each batch
        self.slots = np.full(len(lists), -1, dtype=np.int64)

    def non_neighbours(self, batch: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        size = len(batch)
        self.slots[batch] = np.arange(size)
        mask = np.ones((size, size), dtype=np.bool_)
        np.fill_diagonal(mask, False)
        # (B, k): the batch slot of each point's neighbours, -1 outside the batch; a pair of the
        # batch with j among i's nearest is found from i, so both orders are set from there
        forward = self.slots[self.lists[batch]]
        rows, columns = np.nonzero(forward >= 0)
        mask[rows, forward[rows, columns]] = False
        mask[forward[rows, columns], rows] = False
        self.slots[batch] = -1
        return mask


class _LabelGraph:
    """Points of the same label are neighbours."""

    def __init__(self, labels: npt.NDArray[np.int64]) -> None:
        self.labels = labels

    def non_neighbours(self, batch: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        labels = self.labels[batch]
        return np.asarray(labels[:, None] != labels[None, :])
