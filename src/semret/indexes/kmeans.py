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
copy of the vectors (`IvfStore`: the re-ranker reads them from numpy views of the lists). Each
query's probed lists are scanned by faiss' own ``search`` (a separate quantizer search counts the
candidates), and `VectorIndex`'s refinement turns faiss' float32 top k + margin into the exact
top k of the probed lists by semret's defined similarity, ties by id.

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
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.search import NO_ID
from semret.core.validation import check_int, check_optional_int
from semret.errors import SemretError
from semret.indexes.base import Proposals, VectorIndex
from semret.indexes.store import Added, Slots, VectorStore

__all__ = ["IvfStore", "KMeansIndex"]

#: Float64 (vectors x centroids) distances computed at once.
_DISTANCE_AREA = 1 << 22
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
        assert isinstance(store, IvfStore) and store.index is not None and store.quantizer is not None
        _, clusters = store.quantizer.search(queries, self.n_probe)
        ivf: Any = store.index
        ivf.nprobe = self.n_probe
        # faiss' own search (its numbers: the order of adding), which runs about twice as fast as
        # its search_preassigned on the quantizer's answer above (measured: docs/benchmarks.md);
        # that answer only counts the candidates.
        scores, numbers = ivf.search(queries, k)
        locations = np.where(numbers >= 0, store.number_locations()[np.maximum(numbers, 0)], NO_ID)
        positions, vectors = store.at_locations(locations, with_vectors=True)
        assert vectors is not None
        scanned = store.list_sizes()[clusters].sum(axis=1)
        return scores, positions, scanned.astype(np.int64), vectors

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
    store's position); each number's location in the lists (list number and offset, as faiss'
    store_pairs gives it) is found once after an add, and vectors are read straight from numpy
    views of the lists' memory, a list at a time, instead of through faiss' per-vector
    reconstruction."""

    takes_blocks = True

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.index: faiss.IndexIVFFlat | None = None
        self.quantizer: faiss.Index | None = None
        self.slots = Slots()
        self._views: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]] | None = None
        self._locations: npt.NDArray[np.int64] | None = None
        self._number_locations: npt.NDArray[np.int64] | None = None
        self._sizes: npt.NDArray[np.int64] | None = None

    def reset(self, quantizer: faiss.Index, n_lists: int) -> None:
        """Start empty inverted lists over the quantizer's ``n_lists`` centroids."""
        self.quantizer = quantizer
        self.index = faiss.IndexIVFFlat(quantizer, self.dim, n_lists, faiss.METRIC_INNER_PRODUCT)
        self.index.is_trained = True  # the quantizer holds the centroids already
        self._ids = np.empty(0, dtype=np.int64)
        self.slots = Slots()
        self._changed()

    def _changed(self) -> None:
        self._views = None
        self._locations = None
        self._number_locations = None
        self._sizes = None

    def add(self, ids: npt.ArrayLike, unit: npt.NDArray[np.float32]) -> Added:
        if self.index is None:
            raise SemretError("the kmeans index must be fitted first: call fit()")
        positions, moved = self.merge(ids, len(unit))
        if moved is not None:
            self.slots.renumber(moved)
        start = self.index.ntotal
        self.index.add_with_ids(
            np.ascontiguousarray(unit, dtype=np.float32), np.arange(start, start + len(unit), dtype=np.int64)
        )
        self.slots.append(positions)
        self._changed()
        return positions, moved

    def lists(self) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
        """Per inverted list, numpy views of its (size, dim) vectors and (size,) faiss numbers."""
        if self._views is None:
            assert self.index is not None and self.index.invlists is not None
            lists: Any = self.index.invlists
            views = []
            for number in range(self.index.nlist):
                size = lists.list_size(number)
                if size == 0:
                    views.append((np.empty((0, self.dim), dtype=np.float32), np.empty(0, dtype=np.int64)))
                    continue
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * self.dim * 4)
                numbers = faiss.rev_swig_ptr(lists.get_ids(number), size)
                views.append((codes.view(np.float32).reshape(size, self.dim), numbers))
            self._views = views
        return self._views

    def list_sizes(self) -> npt.NDArray[np.int64]:
        """The number of vectors in each inverted list."""
        if self._sizes is None:
            self._sizes = np.array([len(numbers) for _, numbers in self.lists()], dtype=np.int64)
        return self._sizes

    def number_locations(self) -> npt.NDArray[np.int64]:
        """Each faiss number's location in the lists: list number << 32 | offset."""
        if self._number_locations is None:
            where = np.empty(self.ntotal, dtype=np.int64)
            for number, (_, numbers) in enumerate(self.lists()):
                where[numbers] = (number << 32) | np.arange(len(numbers), dtype=np.int64)
            self._number_locations = where
        return self._number_locations

    def locations(self) -> npt.NDArray[np.int64]:
        """Each position's location in the lists (see `number_locations`)."""
        if self._locations is None:
            where = np.empty(self.ntotal, dtype=np.int64)
            where[self.slots.positions] = self.number_locations()
            self._locations = where
        return self._locations

    def at_locations(
        self, locations: npt.NDArray[np.int64], with_vectors: bool
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32] | None]:
        """The positions (and vectors) at store_pairs locations (-1: none), read a list at a time:
        sorted by list, each list's rows are one contiguous slice of the output."""
        flat = locations.ravel()
        valid = np.flatnonzero(flat >= 0)
        order = valid[np.argsort(flat[valid] >> 32, kind="stable")]
        sorted_locations = flat[order]
        lists = sorted_locations >> 32
        offsets = sorted_locations & 0xFFFFFFFF
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(lists)) + 1, [len(order)]]) if len(order) else np.zeros(1)
        found = np.empty(len(order), dtype=np.int64)
        rows = np.empty((len(order), self.dim), dtype=np.float32) if with_vectors else None
        views = self.lists()
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            codes, numbers = views[int(lists[start])]
            np.take(numbers, offsets[start:stop], out=found[start:stop])
            if rows is not None:
                np.take(codes, offsets[start:stop], axis=0, out=rows[start:stop])
        positions = np.full(len(flat), NO_ID, dtype=np.int64)
        positions[order] = self.slots.positions[found]
        vectors = None
        if rows is not None:
            vectors = np.zeros((len(flat), self.dim), dtype=np.float32)
            vectors[order] = rows
        return positions.reshape(locations.shape), vectors

    def gather(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        if not len(positions):
            return np.empty((0, self.dim), dtype=np.float32)
        _, vectors = self.at_locations(self.locations()[positions], with_vectors=True)
        assert vectors is not None
        return vectors
