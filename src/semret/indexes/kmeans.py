"""k-means (IVF) index: cluster the database, search only the clusters nearest the query.

An inverted file (IVF) as in Jégou, Douze and Schmid, "Product quantization for nearest neighbor
search", IEEE TPAMI 2011, and faiss' ``IndexIVFFlat``: `fit` runs k-means (``faiss.Kmeans``,
seeded, plain Euclidean k-means, ``spherical=False``: after the optional PCA the vectors are no
longer unit, and on unit vectors the nearest centroid by L2 is what the inverted lists need);
`add` puts each vector in the inverted list of its nearest centroid; a query is compared with the
vectors of its ``n_probe`` nearest clusters only, ranked by cosine in the ORIGINAL space.

The engine is faiss' own ``IndexIVFFlat`` (inner product) over the unit vectors, with
a coarse quantizer that holds the learned centroids (``IndexFlatL2``, behind the PCA as a
``LinearTransform`` in an ``IndexPreTransform`` when PCA is on); the inverted lists are the only
copy of the vectors (`IvfStore`: the re-ranker reads them back with faiss' ``reconstruct_batch``
through its direct map). Each query's probed lists are scanned by faiss' own ``search`` (a
quantizer search counts the candidates, only when ``last_candidates`` is read), and
`VectorIndex`'s refinement turns faiss' float32 top k + 4 into the exact top k of the probed
lists by semret's defined similarity, ties by id.

Optional PCA (``pca_components``) before clustering: clustering and the query-to-centroid step
then run in the reduced space; the published work found about 50 components kept precision. It
is computed with numpy: the top eigenvectors of the covariance of the fit vectors (float64,
centred on their mean, no whitening; the same projection as ``faiss.PCAMatrix`` without
whitening), each signed so that its largest-magnitude coordinate is positive.

The number of clusters K is ``n_clusters`` if given, else the number of distinct labels when
`fit` gets labels (one cluster per class), else round(sqrt(N)) for N fit vectors. Assignment to
the nearest centroids is faiss' quantizer search (float32), the same at `add` and at search.
faiss trains on at most 256 vectors per centroid (its default ``max_points_per_centroid``, a
seeded sample of the fit vectors).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.validation import check_int, check_optional_int
from semret.errors import SemretError
from semret.indexes.base import Proposals, VectorIndex
from semret.indexes.store import Added, Slots, VectorStore

__all__ = ["IvfStore", "KMeansIndex"]

#: Float64 (vectors x centroids) distances computed at once.
_DISTANCE_AREA = 1 << 22
#: Vectors read back per faiss ``reconstruct_batch`` call: faiss goes parallel above 1,000.
RECONSTRUCT_BATCH = 1000
#: faiss' seed is a C int.
_MAX_SEED = 2**31 - 1


class KMeansIndex(VectorIndex):
    """IVF over faiss k-means clusters, optional PCA first; cosine ranking in the original space.

    ``n_clusters`` K (None: classes when labels are given to `fit`, else round(sqrt(N))),
    ``n_probe`` clusters searched per query, ``pca_components`` (None: no PCA), ``n_iter`` k-means
    iterations and ``seed`` for faiss.
    """

    kind = "kmeans"
    needs_fit = True
    fitted_attribute = "centroids_"
    uses_engine = True

    def __init__(
        self,
        dim: int,
        n_clusters: int | None = None,
        n_probe: int = 1,
        pca_components: int | None = None,
        n_iter: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__(dim)
        self.n_clusters = check_optional_int("n_clusters", n_clusters, 1)
        self.n_probe = check_int("n_probe", n_probe, 1, self.n_clusters)
        self.pca_components = check_optional_int("pca_components", pca_components, 1, self.dim)
        self.n_iter = check_int("n_iter", n_iter, 1)
        self.seed = check_int("seed", seed, 0, _MAX_SEED)
        #: (K, d') cluster centres in the (PCA) space, float32; None before `fit`.
        self.centroids_: npt.NDArray[np.float32] | None = None
        #: PCA mean (dim,) and matrix (pca_components, dim), float64; None without PCA or before `fit`.
        self.pca_mean_: npt.NDArray[np.float64] | None = None
        self.pca_matrix_: npt.NDArray[np.float64] | None = None

    def _new_store(self) -> IvfStore:
        return IvfStore(self.dim)

    @property
    def n_lists(self) -> int:
        """The number of clusters (inverted lists) learned; 0 before `fit`."""
        return 0 if self.centroids_ is None else len(self.centroids_)

    # --- learning ------------------------------------------------------------------------------

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        n = len(vectors)
        if self.n_clusters is not None:
            k = self.n_clusters
        elif labels is not None:
            k = len(np.unique(labels))
        else:
            k = max(1, round(math.sqrt(n)))
        if k > n:
            raise SemretError(f"cannot make {k} clusters from {n} vectors: fit on at least as many vectors as clusters")
        if self.n_probe > k:
            raise SemretError(f"n_probe ({self.n_probe}) exceeds the number of clusters ({k})")
        if self.pca_components is not None:
            self.pca_mean_, self.pca_matrix_ = _pca(vectors, self.pca_components)
        reduced = vectors if self.pca_matrix_ is None else self._reduced(vectors)
        kmeans = faiss.Kmeans(
            reduced.shape[1], k, niter=self.n_iter, seed=self.seed, spherical=False, min_points_per_centroid=1
        )
        kmeans.train(reduced)
        del reduced
        self.centroids_ = np.array(kmeans.centroids, dtype=np.float32).reshape(k, -1)
        # A refit re-files the vectors already added under the new clusters.
        held_ids, held = (self.store.ids.copy(), self.store.vectors()) if self.ntotal else (None, None)
        assert isinstance(self.store, IvfStore)
        self.store.reset(self._quantizer(), len(self.centroids_))
        if held_ids is not None and held is not None:
            self.store.add(held_ids, held)

    def _reduced(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Unit vectors PCA-projected, as float32, computed in pieces (no float64 copy of them all)."""
        out = np.empty((len(unit), self.pca_components or 0), dtype=np.float32)
        step = max(1, _DISTANCE_AREA // self.dim)
        for start in range(0, len(unit), step):
            out[start : start + step] = self.transform(unit[start : start + step])
        return out

    def _quantizer(self) -> faiss.Index:
        """The coarse quantizer over the centroids: L2 in the clustering space (after the PCA)."""
        assert self.centroids_ is not None
        flat = faiss.IndexFlatL2(self.centroids_.shape[1])
        flat.add(self.centroids_)
        if self.pca_matrix_ is None or self.pca_mean_ is None:
            return flat
        transform = faiss.LinearTransform(self.dim, len(self.pca_matrix_), True)
        faiss.copy_array_to_vector(self.pca_matrix_.astype(np.float32).ravel(), transform.A)
        faiss.copy_array_to_vector((-(self.pca_matrix_ @ self.pca_mean_)).astype(np.float32), transform.b)
        transform.is_trained = True
        quantizer = faiss.IndexPreTransform(transform, flat)
        return quantizer

    def transform(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Unit vectors in the clustering space: PCA-projected if PCA is on, else as they are."""
        if self.pca_matrix_ is None or self.pca_mean_ is None:
            return unit.astype(np.float64)
        return (unit.astype(np.float64) - self.pca_mean_) @ self.pca_matrix_.T

    def nearest_clusters(self, unit: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int64]:
        """(vectors, n) numbers of the n nearest centroids (L2 in the clustering space) of each
        unit vector, nearest first: faiss' quantizer, as `add` and search use it."""
        if self.centroids_ is None:
            raise SemretError("the kmeans index must be fitted first: call fit()")
        assert isinstance(self.store, IvfStore) and self.store.quantizer is not None
        _, clusters = self.store.quantizer.search(np.ascontiguousarray(unit, dtype=np.float32), n)
        return clusters.astype(np.int64)

    # --- the VectorIndex hooks -----------------------------------------------------------------

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        store = self.store
        assert isinstance(store, IvfStore) and store.index is not None
        ivf: Any = store.index
        ivf.nprobe = self.n_probe
        # faiss' own search (its numbers: the order of adding), which runs faster than its
        # search_preassigned would on a quantizer search of ours; so the candidates are counted
        # only when asked for (`IvfStore.probed_sizes`). The refinement reads the proposals' vectors
        # from the lists (`IvfStore.gather`).
        scores, numbers = ivf.search(queries, k)
        return scores, store.slots.to_positions(numbers), partial(store.probed_sizes, queries, self.n_probe)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        if self.centroids_ is None:
            return {}
        state: dict[str, npt.NDArray[Any]] = {"centroids": self.centroids_}
        if self.pca_matrix_ is not None and self.pca_mean_ is not None:
            state |= {"pca_mean": self.pca_mean_, "pca_matrix": self.pca_matrix_}
        return state

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        if "centroids" not in state:
            return  # saved before fit
        width = self.pca_components or self.dim
        centroids = _finite(state, "centroids", 2)
        if (
            centroids.shape[1] != width
            or not self.n_probe <= len(centroids)
            or (self.n_clusters is not None and len(centroids) != self.n_clusters)
        ):
            raise SemretError(
                f"corrupt kmeans index file: centroids of shape {centroids.shape} do not fit "
                f"{width} dimensions, n_clusters={self.n_clusters} and n_probe={self.n_probe}"
            )
        if self.pca_components is not None:
            mean, matrix = _finite(state, "pca_mean", 1), _finite(state, "pca_matrix", 2)
            if mean.shape != (self.dim,) or matrix.shape != (self.pca_components, self.dim):
                raise SemretError(f"corrupt kmeans index file: PCA arrays {mean.shape} and {matrix.shape}")
            self.pca_mean_, self.pca_matrix_ = mean.astype(np.float64), matrix.astype(np.float64)
        self.centroids_ = np.ascontiguousarray(centroids, dtype=np.float32)
        assert isinstance(self.store, IvfStore)
        self.store.reset(self._quantizer(), len(self.centroids_))


def _pca(vectors: npt.NDArray[np.float32], n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and (n, dim) top principal axes of the vectors (covariance eigenvectors, float64)."""
    mean = vectors.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((vectors.shape[1], vectors.shape[1]))
    step = max(1, _DISTANCE_AREA // vectors.shape[1])
    for start in range(0, len(vectors), step):  # in pieces: float64 copies stay small
        centred = vectors[start : start + step].astype(np.float64) - mean
        scatter += centred.T @ centred
    _, axes = np.linalg.eigh(scatter)  # ascending eigenvalues
    matrix = axes[:, ::-1][:, :n].T.copy()
    signs = np.sign(matrix[np.arange(n), np.argmax(np.abs(matrix), axis=1)])
    return mean, matrix * signs[:, None]


def _finite(state: dict[str, npt.NDArray[Any]], name: str, ndim: int) -> npt.NDArray[Any]:
    """A saved float array of ``ndim`` dimensions with finite values, or a `SemretError`."""
    array = state.get(name)
    if (
        array is None
        or array.ndim != ndim
        or array.dtype.kind != "f"
        or array.size == 0
        or not np.isfinite(array).all()
    ):
        got = "none" if array is None else f"{array.dtype} {array.shape}"
        raise SemretError(f"corrupt kmeans index file: {name} should be a finite {ndim}-d float array, got {got}")
    return array


class IvfStore(VectorStore):
    """The vectors of a k-means index, kept only in the inverted lists of its faiss
    ``IndexIVFFlat``; empty until `reset` gives it a quantizer.

    faiss numbers the vectors in the order they were added (`Slots` maps that number to the
    store's position) and keeps a direct map from number to list and offset (8 bytes a vector), so
    that faiss' ``reconstruct_batch`` reads any vectors straight from the lists, in C++."""

    takes_blocks = True

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.index: faiss.IndexIVFFlat | None = None
        self.quantizer: faiss.Index | None = None
        self.slots = Slots()
        self._numbers: npt.NDArray[np.int64] | None = None
        self._sizes: npt.NDArray[np.int64] | None = None

    def reset(self, quantizer: faiss.Index, n_lists: int) -> None:
        """Start empty inverted lists over the quantizer's ``n_lists`` centroids."""
        self.quantizer = quantizer
        self.index = faiss.IndexIVFFlat(quantizer, self.dim, n_lists, faiss.METRIC_INNER_PRODUCT)
        self.index.is_trained = True  # the quantizer holds the centroids already
        self.index.make_direct_map()
        self._ids = np.empty(0, dtype=np.int64)
        self.slots = Slots()
        self._changed()

    def _changed(self) -> None:
        self._numbers = None
        self._sizes = None

    def add(self, ids: npt.ArrayLike, unit: npt.NDArray[np.float32]) -> Added:
        if self.index is None:
            raise SemretError("the kmeans index must be fitted first: call fit()")
        positions, moved = self.merge(ids, len(unit))
        if moved is not None:
            self.slots.renumber(moved)
        # Sequential numbers, as faiss' direct map (array kind) requires.
        self.index.add(np.ascontiguousarray(unit, dtype=np.float32))
        self.slots.append(positions)
        self._changed()
        return positions, moved

    def list_sizes(self) -> npt.NDArray[np.int64]:
        """The number of vectors in each inverted list."""
        if self._sizes is None:
            assert self.index is not None and self.index.invlists is not None
            lists: Any = self.index.invlists
            self._sizes = np.array([lists.list_size(number) for number in range(self.index.nlist)], dtype=np.int64)
        return self._sizes

    def probed_sizes(self, unit_queries: npt.NDArray[np.float32], n_probe: int) -> npt.NDArray[np.int64]:
        """The vectors in each query's ``n_probe`` nearest lists: what faiss scanned for it."""
        assert self.quantizer is not None
        _, clusters = self.quantizer.search(np.ascontiguousarray(unit_queries, dtype=np.float32), n_probe)
        counts: npt.NDArray[np.int64] = self.list_sizes()[clusters].sum(axis=1).astype(np.int64)
        return counts

    def numbers_of(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """faiss' numbers of the vectors at store positions."""
        if self._numbers is None:
            numbers = np.empty(self.ntotal, dtype=np.int64)
            numbers[self.slots.positions] = np.arange(self.ntotal, dtype=np.int64)
            self._numbers = numbers
        return self._numbers[positions]

    def reconstruct(self, numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The (len(numbers), dim) vectors of faiss numbers (all valid), read from the lists by
        faiss' ``reconstruct_batch``, `RECONSTRUCT_BATCH` at a time: faiss runs a larger call on
        OpenMP threads, which were several times slower than these serial calls on cores busy
        with other work (docs/benchmarks.md)."""
        out = np.empty((len(numbers), self.dim), dtype=np.float32)
        if not len(numbers):
            return out
        assert self.index is not None
        keys = np.ascontiguousarray(numbers, dtype=np.int64)
        for start in range(0, len(keys), RECONSTRUCT_BATCH):
            self.index.reconstruct_batch(
                keys[start : start + RECONSTRUCT_BATCH], out[start : start + RECONSTRUCT_BATCH]
            )
        return out

    def gather(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return self.reconstruct(self.numbers_of(positions))
