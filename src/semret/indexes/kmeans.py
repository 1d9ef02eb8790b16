"""k-means (IVF) index: cluster the database, search only the clusters nearest the query.

An inverted file (IVF) as in Jégou, Douze and Schmid, "Product quantization for nearest neighbor
search", IEEE TPAMI 2011, and faiss' ``IndexIVFFlat``: `fit` runs k-means (``faiss.Kmeans``,
seeded, plain Euclidean k-means, ``spherical=False``: after the optional PCA the vectors are no
longer unit, and on unit vectors the nearest centroid by L2 is what the inverted lists need);
`add` puts each vector in the inverted list of its nearest centroid; a query is compared with the
vectors of its ``n_probe`` nearest clusters only, ranked by cosine in the ORIGINAL space by the
shared re-ranker of `VectorIndex`. The inverted lists are the shared `BucketTables` with one
table whose bucket key is the cluster number.

Optional PCA (``pca_components``) before clustering: clustering and the query-to-centroid step
then run in the reduced space; the published work found about 50 components kept precision. It
is computed with numpy: the top eigenvectors of the covariance of the fit vectors (float64,
centred on their mean, no whitening; the same projection as ``faiss.PCAMatrix`` without
whitening), each signed so that its largest-magnitude coordinate is positive.

The number of clusters K is ``n_clusters`` if given, else the number of distinct labels when
`fit` gets labels (one cluster per class), else round(sqrt(N)) for N fit vectors. Assignment to
the nearest centroids is computed in numpy (float64, ties by cluster number) so that it is
deterministic and the same at `add` and at search. faiss trains on at most 256 vectors per
centroid (its default ``max_points_per_centroid``, a seeded sample of the fit vectors).
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.validation import check_int, check_optional_int
from semret.errors import SemretError
from semret.indexes.base import VectorIndex
from semret.indexes.buckets import BucketTables

__all__ = ["KMeansIndex"]

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
        self.lists = BucketTables(1)

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
        reduced = np.ascontiguousarray(self.transform(vectors), dtype=np.float32)
        kmeans = faiss.Kmeans(
            reduced.shape[1], k, niter=self.n_iter, seed=self.seed, spherical=False, min_points_per_centroid=1
        )
        kmeans.train(reduced)
        self.centroids_ = np.array(kmeans.centroids, dtype=np.float32).reshape(k, reduced.shape[1])
        # A refit re-files the vectors already added under the new clusters.
        self.lists = BucketTables(1)
        if self.ntotal:
            self._add(self.store.ids, self.store.vectors())

    def transform(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Unit vectors in the clustering space: PCA-projected if PCA is on, else as they are."""
        if self.pca_matrix_ is None or self.pca_mean_ is None:
            return unit.astype(np.float64)
        return (unit.astype(np.float64) - self.pca_mean_) @ self.pca_matrix_.T

    def nearest_clusters(self, unit: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int64]:
        """(vectors, n) numbers of the n nearest centroids (L2 in the clustering space) of each
        unit vector, nearest first, ties by cluster number."""
        if self.centroids_ is None:
            raise SemretError("the kmeans index must be fitted first: call fit()")
        centroids = self.centroids_.astype(np.float64)
        squared = np.einsum("ij,ij->i", centroids, centroids)
        result = np.empty((len(unit), n), dtype=np.int64)
        step = max(1, _DISTANCE_AREA // len(centroids))
        for start in range(0, len(unit), step):
            points = self.transform(unit[start : start + step])
            # ||p - c||^2 less the constant ||p||^2: the same order.
            distances = squared - 2.0 * (points @ centroids.T)
            if n == 1:  # argmin keeps the first minimum: the same as the stable sort, without sorting
                result[start : start + step, 0] = np.argmin(distances, axis=1)
            else:
                result[start : start + step] = np.argsort(distances, axis=1, kind="stable")[:, :n]
        return result

    # --- the VectorIndex hooks -----------------------------------------------------------------

    def _add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        clusters = self.nearest_clusters(vectors, 1)
        self.lists.add(clusters.astype(np.uint64), ids)

    def _candidates(self, queries: npt.NDArray[np.float32]) -> list[npt.NDArray[np.int64]]:
        if len(queries) == 0:
            return []
        probed = self.nearest_clusters(queries, self.n_probe).astype(np.uint64)
        # Distinct clusters: every id comes once.
        return self.lists.lookup(probed[:, None, :])

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
        self.lists = BucketTables(1)


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
