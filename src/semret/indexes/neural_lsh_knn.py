"""semret's neural LSH variant (kind ``neural-lsh-knn``): L tables, each its own learned H-bit hash
function; a point's J nearest neighbours must collide with it. Candidates are the query's L buckets.

This was semret's ``neural-lsh`` until that kind became the published scheme (PermGNN, Roy et al.,
AAAI 2021, `semret.indexes.neural_lsh`); index files saved as ``neural-lsh`` by earlier versions
load as this kind (`VectorIndex.former_kinds`). Its behaviour is unchanged.

The numbers of the assignment that cites arXiv 2012.08974 (H = 16 bits, L = 10 tables, J = 8,
batches of 125 with 10 random negatives per point) are the defaults, read here in semret's own way
(the published reading, one 16-bit code and tables of J = 8 of its bits, is ``neural-lsh``):

- J (``neighbours``) is the number of nearest neighbours, by cosine and found exactly on the
  fit vectors, that count as positives of a point: the pairs the hash should make collide. (The
  other readings that come to mind, a hidden-layer width or a number of probes, fit the phrase
  "neighbours collide and random negatives do not" worse: that objective needs a neighbour set.)
- the negatives of a point are ``negatives`` points drawn at random (with replacement, never the
  point itself) from its own training batch of ``batch_size`` points.

The idea is learning to hash: hash functions learned from neighbour and negative pairs instead of
drawn at random (random-hyperplane LSH). Each table has its own network from the unit vector to H
logits, a linear map (learned hyperplanes with offsets) or, with ``hidden``, one ReLU hidden layer;
a bit is set where its logit is > 0, and the H bits are the table's bucket key. The networks start
as random hyperplanes through the origin, i.e. as random-hyperplane LSH, and are trained so that:

- neighbours collide: reading the soft bit ``s = tanh(logit)`` as the expectation of a +-1 bit,
  two points agree on bit j with probability ``(1 + s_j t_j) / 2``, so they share a bucket with
  probability ``P(x, y) = prod_j (1 + s_j t_j) / 2``; the loss has ``-log P(x, p)`` (per bit, i.e.
  divided by H) for each of the J positives p of x,
- random negatives do not: ``-log(1 - P(x, n))`` for each negative n (a pair already apart costs
  almost nothing, so only negatives that drift into x's bucket push back),
- buckets stay balanced (``balance_weight`` x): the batch mean of every soft bit is kept near 0
  (each bit ~50% on) and the bits of a table uncorrelated (their batch covariance off the diagonal
  near 0), so the H bits split the data into many buckets instead of a few big ones. (The negatives
  term alone is too weak for that: a random pair's P is tiny, and so is its gradient. With a weight
  of 0.3 some bits went constant and the buckets grew ~100-fold; with the mean term only, bits
  correlated and buckets were uneven, no better than random hyperplanes.)

The optimiser is Adam. H sets the bucket size, about ``n / 2^H`` points: for large collections
fewer bits give higher recall (recall and candidates against random-hyperplane LSH are measured
in docs/benchmarks.md, ``benchmarks/index_sweep.py``).

The tables are trained at once (one batched tensor program) but independently: each has its own
initial hyperplanes, batch order and negatives, drawn from its own seed, and its own loss over its
own parameters (Adam's steps are per parameter, so no table's training depends on another's), so
they differ as independent LSH tables do. Training is seeded and reproducible on the same machine
(`torch.Generator`, no global seeding), on the CPU, one thread. For many fit vectors the neighbours
are found and the networks trained on a random sample of ``fit_sample`` of them, which bounds
the fitting time (build times are in docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from semret.core.cosine import CosineIndex, normalise
from semret.core.params import check_is_fitted
from semret.core.validation import check_int, check_number, check_optional_int
from semret.errors import SemretError
from semret.indexes.base import VectorIndex
from semret.indexes.buckets import MAX_BITS, BucketTables, bucket_keys
from semret.indexes.learned import Progress, one_thread

if TYPE_CHECKING:  # torch is imported where it runs: it is slow to import, and the other indexes need none
    import torch

#: Vectors hashed at once (bounds the (tables, vectors, bits) logits in memory).
_HASH_CHUNK = 8192
#: Points whose exact neighbours are searched at once.
_NEIGHBOUR_CHUNK = 4096
#: Keeps the logs of the soft collision probabilities finite.
_TINY = 1e-6


class KnnNeuralLSHIndex(VectorIndex):
    """Learned-hash LSH: ``n_tables`` tables of ``n_bits``-bit learned hash functions, one probe each;
    see the module docstring for the training."""

    kind = "neural-lsh-knn"
    former_kinds = ("neural-lsh",)
    needs_fit = True
    fitted_attribute = "layers_"
    _unsaved_params = frozenset({"progress"})

    def __init__(
        self,
        dim: int,
        n_bits: int = 16,
        n_tables: int = 10,
        neighbours: int = 8,
        negatives: int = 10,
        batch_size: int = 125,
        epochs: int = 5,
        learning_rate: float = 0.02,
        hidden: int | None = None,
        fit_sample: int = 20_000,
        balance_weight: float = 1.0,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(dim)
        self.n_bits = check_int("n_bits", n_bits, 1, MAX_BITS)
        self.n_tables = check_int("n_tables", n_tables, 1)
        self.neighbours = check_int("neighbours", neighbours, 1)
        self.negatives = check_int("negatives", negatives, 1)
        self.batch_size = check_int("batch_size", batch_size, 2)
        if batch_size <= negatives:
            raise SemretError(
                f"batch_size ({batch_size}) must exceed negatives ({negatives}): negatives come from the batch"
            )
        self.epochs = check_int("epochs", epochs, 1)
        self.fit_sample = check_int("fit_sample", fit_sample, neighbours + 1)
        self.seed = check_int("seed", seed, 0)
        self.hidden = check_optional_int("hidden", hidden, 1)
        self.learning_rate = check_number("learning_rate", learning_rate, 0, low_open=True)
        self.balance_weight = check_number("balance_weight", balance_weight, 0)
        self.progress = progress
        #: Per layer, (weights (L, in, out), biases (L, out)) of all tables; None before fit.
        self.layers_: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.loss_history_: list[float] = []
        self.tables = BucketTables(self.n_tables)

    # --- training ------------------------------------------------------------------------------

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        """Train the hash networks on (a sample of) the unit vectors; ``labels`` are not used."""
        import torch

        sample = self._sample(vectors)
        positives = torch.from_numpy(self._neighbours(sample))
        with one_thread():
            self._train(torch.from_numpy(sample), positives)
        self.tables = BucketTables(self.n_tables)
        if self.ntotal:  # fitted again after vectors were added: hash them with the new networks
            self.tables.add(self._keys(self.store.vectors(), self.progress), np.arange(self.ntotal, dtype=np.int64))

    def _train(self, data: torch.Tensor, positives: torch.Tensor) -> None:
        """Train the networks of all tables on unit vectors ``data`` with ``positives`` (n, J)."""
        import torch

        n, tables = len(data), self.n_tables
        generators = [torch.Generator().manual_seed(self.seed * 1_000_003 + table) for table in range(tables)]
        layers = self._initial_layers(generators)
        parameters = [tensor for layer in layers for tensor in layer]
        for tensor in parameters:
            tensor.requires_grad_(True)
        optimiser = torch.optim.Adam(parameters, lr=self.learning_rate)
        batch = min(self.batch_size, n)
        steps_per_epoch = n // batch  # full batches only: every batch has `batch` points to draw negatives from
        total_steps = self.epochs * steps_per_epoch
        self.loss_history_ = []
        for epoch in range(self.epochs):
            orders = torch.stack([torch.randperm(n, generator=g) for g in generators])  # (L, n)
            negatives = torch.stack(  # (L, steps, batch, negatives): offsets 1..batch-1 skip the point itself
                [torch.randint(1, batch, (steps_per_epoch, batch, self.negatives), generator=g) for g in generators]
            )
            total = 0.0
            for step in range(steps_per_epoch):
                chosen = orders[:, step * batch : (step + 1) * batch]  # (L, B)
                picked = (torch.arange(batch)[None, :, None] + negatives[:, step]) % batch  # (L, B, M)
                loss = self._loss(layers, data, positives, chosen, picked)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                if self.progress:
                    self.progress("training", epoch * steps_per_epoch + step + 1, total_steps)
            self.loss_history_.append(total / (tables * steps_per_epoch))
        self.layers_ = [(weights.detach().clone(), biases.detach().clone()) for weights, biases in layers]

    def _sample(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """At most ``fit_sample`` of the vectors, drawn at random (seeded), in their order."""
        if len(vectors) < self.neighbours + 1:
            raise SemretError(
                f"a {self.kind} index with {self.neighbours} neighbours needs at least {self.neighbours + 1} "
                f"fit vectors, got {len(vectors)}"
            )
        if len(vectors) <= self.fit_sample:
            return vectors
        chosen = np.sort(np.random.default_rng(self.seed).choice(len(vectors), self.fit_sample, replace=False))
        return vectors[chosen]

    def _neighbours(self, sample: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """(n, J): positions of each point's J most similar other points (exact cosine, ties by position)."""
        n, j = len(sample), self.neighbours
        exact = CosineIndex(self.dim)
        exact.add(np.arange(n), sample)
        result = np.empty((n, j), dtype=np.int64)
        for start in range(0, n, _NEIGHBOUR_CHUNK):
            stop = min(start + _NEIGHBOUR_CHUNK, n)
            _, found = exact.search(sample[start:stop], j + 1)
            others = found != np.arange(start, stop)[:, None]
            others[others.sum(axis=1) > j, -1] = False  # the point is not among them (duplicates): keep the first J
            result[start:stop] = found[others].reshape(-1, j)
            if self.progress:
                self.progress("neighbours", stop, n)
        return result

    def _layer_shapes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of each layer of a table's network."""
        sizes = [self.dim, self.n_bits] if self.hidden is None else [self.dim, self.hidden, self.n_bits]
        return list(itertools.pairwise(sizes))

    def _initial_layers(self, generators: list[torch.Generator]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, stacked over tables: random Gaussian hyperplanes through the origin (random-
        hyperplane LSH to start from), scaled so a unit vector's outputs have unit variance."""
        import torch

        layers = []
        for fan_in, fan_out in self._layer_shapes():
            scale = 1.0 if fan_in == self.dim else (2.0 / fan_in) ** 0.5  # inputs are unit vectors
            weights = torch.stack([torch.randn(fan_in, fan_out, generator=g) * scale for g in generators])
            layers.append((weights, torch.zeros(self.n_tables, fan_out)))
        return layers

    def _loss(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        data: torch.Tensor,
        positives: torch.Tensor,
        chosen: torch.Tensor,
        picked: torch.Tensor,
    ) -> torch.Tensor:
        """Sum over tables of each table's loss on its batch ``chosen`` (L, B) with negatives at the
        batch positions ``picked`` (L, B, M): collide with positives, not with negatives, balanced."""
        import torch

        tables, batch = chosen.shape
        j, h = self.neighbours, self.n_bits
        points = torch.cat([chosen, positives[chosen].reshape(tables, batch * j)], dim=1)  # (L, B + B*J)
        soft = torch.tanh(_logits(layers, data[points]))  # (L, B + B*J, H)
        own, near = soft[:, :batch], soft[:, batch:].reshape(tables, batch, j, h)
        far = torch.gather(own, 1, picked.reshape(tables, -1, 1).expand(-1, -1, h)).reshape(tables, batch, -1, h)
        log_near = _log_collision(own[:, :, None], near)  # (L, B, J)
        log_far = _log_collision(own[:, :, None], far)  # (L, B, M)
        collide = -log_near.mean() / h
        apart = -torch.log1p(-torch.exp(log_far).clamp(max=1 - _TINY)).mean()
        mean_bits = own.mean(dim=1)  # (L, H)
        centred = own - mean_bits[:, None]
        correlation = centred.transpose(1, 2) @ centred / batch  # (L, H, H)
        off_diagonal = correlation - torch.diag_embed(torch.diagonal(correlation, dim1=1, dim2=2))
        balance = (mean_bits**2).mean() + (off_diagonal**2).sum(dim=(1, 2)).mean() / max(1, h * (h - 1))
        # Each table's loss is a mean over its own batch; the sum over tables trains them side by side.
        return (collide + apart + self.balance_weight * balance) * tables

    # --- hashing -------------------------------------------------------------------------------

    def hash_keys(self, vectors: npt.ArrayLike) -> npt.NDArray[np.uint64]:
        """(n, L) bucket keys of (n, dim) vectors, normalised first: the bucket of each in each table."""
        return self._keys(normalise(vectors, self.dim))

    def _keys(self, vectors: npt.NDArray[np.float32], progress: Progress | None = None) -> npt.NDArray[np.uint64]:
        """(n, L) bucket keys of unit vectors: bit j of table t is set where its logit is > 0."""
        import torch

        check_is_fitted(self, "layers_")
        assert self.layers_ is not None
        keys = np.empty((len(vectors), self.n_tables), dtype=np.uint64)
        with torch.no_grad(), one_thread():
            for start in range(0, len(vectors), _HASH_CHUNK):
                chunk = torch.from_numpy(vectors[start : start + _HASH_CHUNK])
                logits = _logits(self.layers_, chunk.expand(self.n_tables, -1, -1))  # (L, n, H)
                keys[start : start + len(chunk)] = bucket_keys((logits > 0).numpy()).T
                if progress:
                    progress("hashing", start + len(chunk), len(vectors))
        return keys

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self.tables.add(self._keys(vectors, self.progress), positions)

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        self.tables.renumber(moved)

    def _candidate_pairs(self, queries: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The positions in the query's bucket of each table (one probe per table), each once."""
        return self.tables.lookup_pairs(self._keys(queries)[:, :, None])

    # --- files ---------------------------------------------------------------------------------

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        state: dict[str, npt.NDArray[Any]] = {}
        for layer, (weights, biases) in enumerate(self.layers_ or []):
            state[f"weights_{layer}"] = weights.numpy().copy()
            state[f"biases_{layer}"] = biases.numpy().copy()
        return state

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        import torch

        if not state:
            return
        layers = []
        for layer, (fan_in, fan_out) in enumerate(self._layer_shapes()):
            weights, biases = state.get(f"weights_{layer}"), state.get(f"biases_{layer}")
            if weights is None or biases is None:
                raise SemretError(f"the saved {self.kind} index lacks the weights of layer {layer}")
            tables = self.n_tables
            if weights.shape != (tables, fan_in, fan_out) or biases.shape != (tables, fan_out):
                raise SemretError(
                    f"the saved {self.kind} index has layer {layer} weights {weights.shape} and biases "
                    f"{biases.shape}, its parameters need {(tables, fan_in, fan_out)} and {(tables, fan_out)}"
                )
            layers.append((torch.from_numpy(weights.astype(np.float32)), torch.from_numpy(biases.astype(np.float32))))
        self.layers_ = layers


def _logits(layers: list[tuple[torch.Tensor, torch.Tensor]], inputs: torch.Tensor) -> torch.Tensor:
    """(L, n, H) logits of (L, n, dim) inputs, each table through its own layers (ReLU between)."""
    import torch

    outputs = inputs
    for layer, (weights, biases) in enumerate(layers):
        if layer:
            outputs = torch.relu(outputs)
        outputs = torch.baddbmm(biases[:, None, :], outputs, weights)
    return outputs


def _log_collision(soft: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """log of the probability that two points share a bucket, from their soft bits in (-1, 1):
    the sum over bits of log((1 + s t) / 2), bits taken as independent."""
    import torch

    return torch.log(((1 + soft * others) / 2).clamp(min=_TINY)).sum(dim=-1)
