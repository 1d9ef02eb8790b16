"""Hierarchy-based class embeddings (Barz & Denzler, WACV 2019).

B. Barz and J. Denzler, "Hierarchy-based Image Embeddings for Semantic Image Retrieval", WACV
2019, place every class of a hierarchy on the unit sphere so that the dot product of two class
embeddings equals the classes' semantic similarity ``1 - height(lcs(a, b)) / max_height``. Their
construction is incremental: class i's embedding solves the dot products with classes 0..i-1 in
its first i-1 dimensions and puts the rest of the unit norm into dimension i. These are exactly
the rows of the lower Cholesky factor L of the similarity matrix S = L L^T, which is what
`class_embeddings` computes (in the given class order), so the result is lower triangular and,
in the same order, equal to the embeddings Barz & Denzler publish.

For distinct leaf classes S is positive definite: S = B W B^T where B marks each class's
non-root ancestors (itself included, a column no other leaf has) and W > 0 holds the height
steps, so Cholesky always applies; `embeddings_from_similarity` also handles any other
(semi-definite) similarity matrix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from semret.errors import SemretError
from semret.vision.hierarchy import ClassHierarchy, NodeRef

#: The largest |E E^T - S| entry an embedding may have.
MAX_ERROR = 1e-6


def class_embeddings(hierarchy: ClassHierarchy, classes: Sequence[NodeRef]) -> np.ndarray:
    """The (n, n) float64 embeddings of ``classes`` (ids or names, distinct leaves of
    ``hierarchy``), one unit-norm row per class in the given order, with
    ``E @ E.T == hierarchy.similarity_matrix(classes)`` up to `MAX_ERROR` (Barz & Denzler 2019).

    Raises `SemretError` for an unknown class, a class given twice, or an inner node (its
    similarity to itself is below 1, so it has no unit-norm embedding).
    """
    ids = [hierarchy.node(c) for c in classes]
    repeated = sorted(hierarchy.name(node) for node, count in Counter(ids).items() if count > 1)
    if repeated:
        raise SemretError(f"classes given more than once: {', '.join(map(repr, repeated))}")
    inner = [hierarchy.name(node) for node in ids if hierarchy.children(node)]
    if inner:
        raise SemretError(
            f"classes must be leaves of the hierarchy; these are inner nodes: {', '.join(map(repr, inner))}"
        )
    return embeddings_from_similarity(hierarchy.similarity_matrix(ids))


def embeddings_from_similarity(similarity: ArrayLike) -> np.ndarray:
    """Rows E with ``E @ E.T == similarity`` (max abs error below `MAX_ERROR`), shape (n, n).

    Positive definite input: the exact lower Cholesky factor (Barz & Denzler's incremental
    construction; row i is zero after dimension i). Only positive semi-definite input (Cholesky
    fails or is off by more than `MAX_ERROR`): ``V sqrt(max(w, 0))`` from the eigendecomposition
    ``S = V diag(w) V^T``, columns by decreasing eigenvalue; negative eigenvalues down to
    ``-MAX_ERROR / 2`` count as rounding noise and are clipped to 0 (changing no entry by more than
    their size). A matrix that is not square, symmetric and finite, or has a more negative
    eigenvalue, raises `SemretError`. Rows have norm ``sqrt(S_ii)``, i.e. unit norm for a
    similarity matrix with ones on the diagonal.
    """
    matrix = np.asarray(similarity, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise SemretError(f"a similarity matrix must be square, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise SemretError("the similarity matrix has entries that are not finite numbers")
    asymmetry = float(np.abs(matrix - matrix.T).max(initial=0.0))
    if asymmetry > 1e-12:
        raise SemretError(f"the similarity matrix is not symmetric (entries differ by up to {asymmetry:.3g})")
    if matrix.shape[0] == 0:
        return np.zeros((0, 0))
    matrix = (matrix + matrix.T) / 2.0

    try:
        lower = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        pass
    else:
        if embedding_error(lower, matrix) < MAX_ERROR:
            return lower

    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    smallest = float(eigenvalues[0])
    if smallest < -MAX_ERROR / 2:
        raise SemretError(
            f"the similarity matrix is not positive semi-definite (smallest eigenvalue {smallest:.3g}), "
            "so no embedding has these dot products"
        )
    order = np.argsort(eigenvalues)[::-1]
    embeddings = eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    error = embedding_error(embeddings, matrix)
    if error >= MAX_ERROR:
        raise SemretError(f"could not embed the similarity matrix to within {MAX_ERROR:g} (max error {error:.3g})")
    return embeddings


def embedding_error(embeddings: ArrayLike, similarity: ArrayLike) -> float:
    """The largest absolute difference between the embeddings' dot products and ``similarity``."""
    rows = np.asarray(embeddings, dtype=np.float64)
    target = np.asarray(similarity, dtype=np.float64)
    if rows.ndim != 2 or target.shape != (rows.shape[0], rows.shape[0]):
        raise SemretError(f"embeddings of shape {rows.shape} do not match a similarity matrix of shape {target.shape}")
    return float(np.abs(rows @ rows.T - target).max(initial=0.0))
