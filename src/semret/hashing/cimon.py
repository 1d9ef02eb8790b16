"""CIMON unsupervised hashing on frozen backbone features (Luo et al., "CIMON: Towards High-quality
Hash Codes", IJCAI 2021, arXiv 2010.07804). No labels are used.

What is followed, from the public code of the paper (``ileumbbb/CIMON``: ``cimon.py``; the
equations are named here as in docs/hashing.md, the paper's own numbers could not be checked):

- the similarity graph, built once on the training images' pretrained features
  (`similarity_graph`): S = +1 where the cosine distance is at most ``threshold`` (0.1), else -1;
  a confidence weight from two half-Gaussians fitted either side of the distances' mode (0 at the
  threshold, towards 1 away from it); spectral clustering (scikit-learn, ``n_clusters`` = 70,
  ``assign_labels="discretize"``) zeroes the weight of pairs on which threshold and clusters
  disagree; W = the product;
- the hash head ends in L tanh units; training uses the tanh codes, the codes are their signs;
- the loss: the similarity-preserving (semantic consistency) loss of each of two augmented views'
  codes against the graph, sum over pairs of W |S| (v_i . v_j / L - S_ij)^2 / B^2, for both views
  and (as the code's four terms with one graph) twice, plus ``contrastive_weight`` (0.3) times
  SimCLR's NT-Xent between the two views' normalised codes (temperature 0.5);
- SGD, momentum 0.9, weight decay 1e-5, learning rate 1e-3, batches of 24, 5,000 training images.

What differs, and why: the backbone is frozen (the paper fine-tunes VGG-16; on a CPU semret trains
the head only, on cached features); the two views are two of the given augmented views' features
per image, drawn each step (the paper augments afresh each step); the graph is built from the
clean images' features, once (the paper's code builds one from each of two augmented views).
Seed 004 built the graph per batch of 256 with 5 clusters and threshold 0.3 (for memory, and
because it only classified from the codes); that is not what this module does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.special import ndtr

from semret.core.params import Configurable, check_is_fitted
from semret.core.validation import check_count, check_finite_array, check_non_negative, check_positive, check_seed
from semret.errors import SemretError
from semret.hashing.hasher import EncodedImages
from semret.hashing.network import load_weights
from semret.torch_files import read_semret_file, save_semret_file
from semret.vision.backbones import torch_seeded

Progress = Callable[[str, int, int], None]
#: Width of the bins the distances' mode is found in (the code's 0.01 over [0, 1)).
MODE_BIN = 0.01
CHECKPOINT_FORMAT = "semret.cimon-model"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class SimilarityGraph:
    """CIMON's guidance for n training images: S (+1 / -1) and its confidence W in [0, 1]."""

    similar: npt.NDArray[np.int8]
    weights: npt.NDArray[np.float32]
    #: The share of pairs (i != j) with S = +1, and the half-Gaussians' parameters (mode, left
    #: sigma, right mean and sigma): to see whether the threshold suits the features.
    positive_rate: float
    mode: float
    left_sigma: float
    right_mean: float
    right_sigma: float
    clusters: npt.NDArray[np.int64]


def distance_mode(distances: npt.NDArray[np.float64]) -> float:
    """The left edge of the fullest 0.01-wide bin over [0, 1) of the distances strictly between 0
    and 1 (the first such bin on ties), as CIMON's code scans for it (it counts cur < d < cur +
    0.01, so a distance exactly on a bin edge is in no bin there and in the bin above here)."""
    inside = distances[(distances > 0) & (distances < 1)]
    if not len(inside):
        raise SemretError("every pair of training features is at cosine distance 0 or >= 1: no graph can be made")
    counts = np.bincount(np.minimum((inside / MODE_BIN).astype(np.int64), int(1 / MODE_BIN) - 1))
    return float(np.argmax(counts) * MODE_BIN)


def _half_sigma(values: npt.NDArray[np.float64], centre: float) -> float:
    """The maximum-likelihood sigma of a half sample mirrored about ``centre`` (its mean is the centre)."""
    if not len(values):
        return 0.0
    return float(np.sqrt(np.mean((values - centre) ** 2)))


def confidence_weights(
    distances: npt.NDArray[np.float64], threshold: float
) -> tuple[npt.NDArray[np.float64], float, float, float, float]:
    """CIMON's confidence of each pair: two half-Gaussians fitted about the mode m (the distances at
    or below m mirrored about m, and those above it mirrored), then, with Phi the normal CDF,
    (Phi((d - mu_r) / s_r) - Phi((t - mu_r) / s_r)) / (1 - Phi((t - mu_r) / s_r)) above the
    threshold t and (Phi((t - mu_l) / s_l) - Phi((d - mu_l) / s_l)) / Phi((t - mu_l) / s_l) at or
    below it, clipped to [0, 1]. Returns the weights, m, s_l, mu_r, s_r."""
    mode = distance_mode(distances)
    left, right = distances[distances <= mode], distances[distances > mode]
    left_sigma = max(_half_sigma(left, mode), 1e-12)
    # the right half mirrored about the mode: (2m - right) and right; its mean is the mode too
    right_mean = mode
    right_sigma = max(_half_sigma(right, mode), 1e-12)
    above = distances > threshold
    weights = np.empty_like(distances)
    at_t_right = ndtr((threshold - right_mean) / right_sigma)
    at_t_left = ndtr((threshold - mode) / left_sigma)
    weights[above] = (ndtr((distances[above] - right_mean) / right_sigma) - at_t_right) / max(1 - at_t_right, 1e-12)
    weights[~above] = (at_t_left - ndtr((distances[~above] - mode) / left_sigma)) / max(at_t_left, 1e-12)
    np.clip(weights, 0.0, 1.0, out=weights)
    return weights, mode, left_sigma, right_mean, right_sigma


def similarity_graph(
    features: npt.ArrayLike, threshold: float = 0.1, n_clusters: int = 70, seed: int = 0
) -> SimilarityGraph:
    """CIMON's similarity graph of n feature vectors (module docstring), n x n."""
    from sklearn.cluster import SpectralClustering

    array = check_finite_array("CIMON training features", features, 2, dtype=np.float64, allow_empty=False)
    if len(array) < 2:
        raise SemretError(f"CIMON needs at least 2 training images, got {len(array)}")
    norms = np.linalg.norm(array, axis=1)
    if (norms == 0).any():
        raise SemretError(
            f"training features {np.flatnonzero(norms == 0)[:5].tolist()} are zero: they have no direction"
        )
    if not 1 <= n_clusters <= len(array):
        raise SemretError(f"n_clusters ({n_clusters}) must be between 1 and the {len(array)} training images")
    distances = squareform(pdist(array, "cosine"))
    similar = np.where(distances <= threshold, 1, -1).astype(np.int8)
    weights, mode, left_sigma, right_mean, right_sigma = confidence_weights(distances, threshold)
    unit = array / norms[:, None]
    if n_clusters == 1:
        clusters = np.zeros(len(array), dtype=np.int64)
    else:
        clustering = SpectralClustering(n_clusters=n_clusters, random_state=seed, assign_labels="discretize")
        clusters = clustering.fit_predict(unit).astype(np.int64)
    same = clusters[:, None] == clusters[None, :]
    agree = ((2 * same.astype(np.int8) - 1) * similar + 1) // 2  # 1 where threshold and clusters agree
    weights *= agree
    off_diagonal = ~np.eye(len(array), dtype=np.bool_)
    return SimilarityGraph(
        similar,
        weights.astype(np.float32),
        float(np.mean(similar[off_diagonal] == 1)),
        mode,
        left_sigma,
        right_mean,
        right_sigma,
        clusters,
    )


def similarity_loss(codes: torch.Tensor, similar: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_ij W_ij |S_ij| (v_i . v_j / L - S_ij)^2 / B^2 for a batch's (B, L) tanh codes."""
    inner = codes @ codes.T / codes.shape[1]
    return (weights * similar.abs() * (inner - similar) ** 2).mean()


def contrastive_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent between two views' codes: for each of the 2B codes, -log of the
    exponentiated cosine with its other view over the sum over the 2B - 1 other codes."""
    z = torch.nn.functional.normalize(torch.cat([first, second]), dim=1)
    logits = z @ z.T / temperature
    n = len(first)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return torch.nn.functional.cross_entropy(logits, partner)


class CimonHasher(Configurable):
    """CIMON on frozen features: an L-bit tanh head trained without labels (module docstring).

    ``n_bits`` L; ``hidden`` units of a hidden ReLU layer (0: the paper's single linear layer);
    ``threshold``, ``n_clusters``: the graph's; ``graph_size``: training images (a seeded sample
    when more are given); ``contrastive_weight`` (eta), ``temperature`` (tau); ``epochs``,
    ``batch_size``, ``learning_rate``, ``momentum``, ``weight_decay``: SGD's; ``seed``.
    """

    def __init__(
        self,
        n_bits: int = 64,
        hidden: int = 0,
        threshold: float = 0.1,
        n_clusters: int = 70,
        graph_size: int = 5000,
        contrastive_weight: float = 0.3,
        temperature: float = 0.5,
        epochs: int = 150,
        batch_size: int = 24,
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 1e-5,
        seed: int = 0,
    ) -> None:
        self.n_bits = check_count("n_bits", n_bits)
        self.hidden = check_count("hidden", hidden, 0)
        self.threshold = check_positive("threshold", threshold)
        self.n_clusters = check_count("n_clusters", n_clusters)
        self.graph_size = check_count("graph_size", graph_size, 2)
        self.contrastive_weight = check_non_negative("contrastive_weight", contrastive_weight)
        self.temperature = check_positive("temperature", temperature)
        self.epochs = check_count("epochs", epochs)
        self.batch_size = check_count("batch_size", batch_size, 2)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.momentum = check_non_negative("momentum", momentum)
        self.weight_decay = check_non_negative("weight_decay", weight_decay)
        self.seed = check_seed(seed)
        self.network_: torch.nn.Module | None = None
        self.feature_dim_: int | None = None
        #: Where the features came from (backbone name, weights, input size), when told (`save`).
        self.feature_source_: dict[str, Any] | None = None
        self.graph_: SimilarityGraph | None = None
        self.training_rows_: npt.NDArray[np.int64] | None = None
        self.loss_history_: list[float] = []

    def _network(self, n_features: int) -> torch.nn.Module:
        if self.hidden:
            return torch.nn.Sequential(
                torch.nn.Linear(n_features, self.hidden), torch.nn.ReLU(), torch.nn.Linear(self.hidden, self.n_bits)
            )
        return torch.nn.Linear(n_features, self.n_bits)

    def fit(self, features: npt.ArrayLike, views: npt.ArrayLike, progress: Progress | None = None) -> CimonHasher:
        """Learn from (n, d) clean features (the graph) and (n, V, d) features of V >= 2 augmented
        views of the same images (the consistency losses); progress("training", epoch, epochs)."""
        clean = check_finite_array("CIMON features", features, 2, allow_empty=False)
        augmented = check_finite_array("CIMON view features", views, 3)
        if augmented.shape[0] != len(clean) or augmented.shape[2] != clean.shape[1] or augmented.shape[1] < 2:
            raise SemretError(
                f"CIMON views must be (n, V >= 2, d) = ({len(clean)}, V, {clean.shape[1]}), got {augmented.shape}"
            )
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(clean), size=min(self.graph_size, len(clean)), replace=False))
        graph = similarity_graph(clean[rows], self.threshold, min(self.n_clusters, len(rows)), self.seed)
        similar = torch.from_numpy(graph.similar.astype(np.float32))
        weights = torch.from_numpy(graph.weights)
        pool = torch.from_numpy(augmented[rows])
        generator = torch.Generator().manual_seed(self.seed)
        history: list[float] = []
        threads = torch.get_num_threads()
        # Batches of 24 through a small head: one thread (torch's OpenMP pool costs more than it
        # gains on such steps, 25x more on busy cores).
        torch.set_num_threads(1)
        try:
            network = self._train(clean.shape[1], pool, similar, weights, generator, history, progress)
        finally:
            torch.set_num_threads(threads)
        network.eval()
        self.network_, self.graph_, self.training_rows_, self.loss_history_ = network, graph, rows, history
        self.feature_dim_ = int(clean.shape[1])
        return self

    def _train(
        self,
        n_features: int,
        pool: torch.Tensor,
        similar: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator,
        history: list[float],
        progress: Progress | None,
    ) -> torch.nn.Module:
        """SGD over the training images' views (module docstring); the epochs' mean losses go to ``history``."""
        n_views = pool.shape[1]
        with torch_seeded(self.seed):
            network = self._network(n_features)
            optimiser = torch.optim.SGD(
                network.parameters(), lr=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay
            )
            for epoch in range(self.epochs):
                order = torch.randperm(len(pool), generator=generator)
                total, batches = 0.0, 0
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    if len(batch) < 2:  # a last batch of one has no pairs (the original keeps it)
                        continue
                    first_view = torch.randint(n_views, (len(batch),), generator=generator)
                    shift = torch.randint(1, n_views, (len(batch),), generator=generator)
                    second_view = (first_view + shift) % n_views  # two different views of each image
                    v1 = torch.tanh(network(pool[batch, first_view]))
                    v2 = torch.tanh(network(pool[batch, second_view]))
                    s, w = similar[batch][:, batch], weights[batch][:, batch]
                    semantic = 2 * (similarity_loss(v1, s, w) + similarity_loss(v2, s, w))
                    loss = semantic + self.contrastive_weight * contrastive_loss(v1, v2, self.temperature)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach())
                    batches += 1
                history.append(total / max(batches, 1))
                if progress is not None:
                    progress("training", epoch + 1, self.epochs)
        return network

    @property
    def embedding_dim(self) -> int:
        """The size of the stored embedding: the L tanh outputs."""
        return self.n_bits

    def activations(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The head's outputs before tanh, (n, n_bits)."""
        check_is_fitted(self, "network_")
        assert self.network_ is not None
        array = check_finite_array("features", features, 2)
        if array.shape[1] != self.feature_dim_:
            raise SemretError(
                f"the features have {array.shape[1]} dimensions, the CIMON model expects {self.feature_dim_}"
            )
        with torch.no_grad():
            out: npt.NDArray[np.float32] = self.network_(torch.from_numpy(array)).numpy()
        return out

    def encode(self, features: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """Packed codes: bit = 1 where tanh(v) >= 0 (the sign, 0 read as +1)."""
        return np.packbits(self.activations(features) >= 0, axis=1, bitorder="big")

    def encode_images(self, features: npt.ArrayLike, progress: Progress | None = None) -> EncodedImages:
        """What the store keeps per image: the unit-norm tanh codes (the embedding a cosine re-rank
        compares) and the packed binary codes (their signs)."""
        activations = self.activations(features)
        soft = np.tanh(activations.astype(np.float64))
        norms = np.linalg.norm(soft, axis=1, keepdims=True)
        embeddings = (soft / np.maximum(norms, 1e-12)).astype(np.float32)
        if progress:
            progress("encoding", len(activations), len(activations))
        return EncodedImages(embeddings, np.packbits(activations >= 0, axis=1, bitorder="big"))

    def state(self) -> dict[str, Any]:
        """The learned weights (for a checkpoint)."""
        check_is_fitted(self, "network_")
        assert self.network_ is not None
        return {name: tensor.detach().clone() for name, tensor in self.network_.state_dict().items()}

    def save(self, path: str | Path, feature_source: dict[str, Any] | None = None) -> None:
        """Write the trained head, its parameters and (when given) the backbone its features came
        through (``{"backbone", "weights", "image_size"}``), atomically."""
        state = self.state()
        source = feature_source if feature_source is not None else self.feature_source_
        contents = {
            "config": self.get_params(),
            "state_dict": state,
            "feature_dim": self.feature_dim_,
            "feature_source": dict(source) if source else {},
            "loss_history": list(self.loss_history_),
            "graph_positive_rate": self.graph_.positive_rate if self.graph_ is not None else None,
        }
        save_semret_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, contents)
        self.feature_source_ = dict(source) if source else None

    @classmethod
    def load(cls, path: str | Path) -> CimonHasher:
        """A model written by `save`; a missing, corrupt or foreign file is a one-line error."""
        payload = read_semret_file(
            path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "CIMON model", ("config", "state_dict", "feature_dim")
        )
        stored = payload["config"]
        if not isinstance(stored, dict) or set(stored) - set(cls.param_names()):
            raise SemretError(f"{path}: the CIMON model's config has unknown fields (written by a newer semret?)")
        try:
            hasher = cls(**stored)
        except SemretError as exc:
            raise SemretError(f"{path}: {exc}") from exc
        feature_dim, state, source = payload["feature_dim"], payload["state_dict"], payload.get("feature_source")
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise SemretError(f"{path}: the CIMON model's feature_dim is {feature_dim!r}, not a positive integer")
        if not isinstance(state, dict) or not isinstance(source or {}, dict):
            raise SemretError(f"{path}: the CIMON model's weights or feature source are not mappings")
        with torch_seeded(hasher.seed):  # initial weights, replaced by the stored ones
            network = hasher._network(feature_dim)
        load_weights(network, state, str(path))  # type: ignore[arg-type]
        network.eval()
        hasher.network_ = network
        hasher.feature_dim_ = feature_dim
        hasher.feature_source_ = dict(source or {}) or None
        try:
            hasher.loss_history_ = [float(x) for x in payload.get("loss_history", [])]
        except (TypeError, ValueError):
            raise SemretError(f"{path}: the CIMON model's loss history is not a list of numbers") from None
        return hasher
