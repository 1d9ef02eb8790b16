"""Two-dimensional views of embeddings, coloured by class (seed 003: "PCA and t-SNE, for analysis
of clusters generated in low dimensional space").

- ``pca``: scikit-learn's PCA on the (L2-normalised) vectors; the view is the first two
  components, and the explained variance ratio of each component kept is reported (the seed's
  point: how much of the structure two linear axes hold).
- ``tsne``: scikit-learn's TSNE (van der Maaten and Hinton 2008) on the same vectors, after PCA to
  at most 50 dimensions (the usual speed-up, as scikit-learn's documentation advises), seeded;
  its final KL divergence is reported. t-SNE is quadratic in memory and slow on CPUs: views of
  more than a few thousand points take a seeded sample (``limit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_choice, check_count, check_finite_array, check_seed
from semret.errors import SemretError

METHODS = ("pca", "tsne")
#: Dimensions kept by PCA before t-SNE.
TSNE_PCA_DIMS = 50


@dataclass(frozen=True)
class EmbeddingView:
    """Each point's 2-d position, with what the projection reports."""

    method: str
    points: npt.NDArray[np.float64]
    #: The rows of the input that were projected (all, or a seeded sample), in order.
    rows: npt.NDArray[np.int64]
    #: PCA: the explained variance ratio of each component kept (first two: the view's axes).
    explained_variance_ratio: npt.NDArray[np.float64] | None = None
    #: t-SNE: the KL divergence after optimisation.
    kl_divergence: float | None = None


def sample_rows(n: int, limit: int | None, seed: int) -> npt.NDArray[np.int64]:
    """All rows, or ``limit`` of them drawn with ``seed``, in order."""
    if limit is None or limit >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False)).astype(np.int64)


def project(
    vectors: npt.ArrayLike,
    method: str = "pca",
    *,
    components: int = 10,
    perplexity: float = 30.0,
    limit: int | None = 5000,
    seed: int = 0,
) -> EmbeddingView:
    """The 2-d view of (n, d) vectors by ``method`` (module docstring); PCA reports the variance
    of ``components`` components. ``limit`` (None: no limit) caps the points projected."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    method = check_choice("method", method, METHODS)
    seed = check_seed(seed)
    array = check_finite_array("embeddings", vectors, 2, dtype=np.float64, allow_empty=False)
    if limit is not None:
        check_count("limit", limit, 3)
    rows = sample_rows(len(array), limit, seed)
    chosen = array[rows]
    norms = np.linalg.norm(chosen, axis=1, keepdims=True)
    if (norms == 0).any():
        raise SemretError("some embeddings are zero vectors: they have no direction to show")
    unit = chosen / norms
    if len(unit) < 3 or unit.shape[1] < 2:
        raise SemretError(f"a 2-d view needs at least 3 vectors of at least 2 dimensions, got {unit.shape}")
    if method == "pca":
        kept = min(check_count("components", components, 2), unit.shape[1], len(unit))
        pca = PCA(kept, random_state=seed).fit(unit)
        return EmbeddingView(
            method, pca.transform(unit)[:, :2], rows, explained_variance_ratio=pca.explained_variance_ratio_
        )
    if not 0 < perplexity < len(unit):
        raise SemretError(f"perplexity must be between 0 and the {len(unit)} points, got {perplexity}")
    reduced = unit
    if unit.shape[1] > TSNE_PCA_DIMS:
        reduced = PCA(min(TSNE_PCA_DIMS, len(unit)), random_state=seed).fit_transform(unit)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
    points = tsne.fit_transform(reduced)
    return EmbeddingView(method, np.asarray(points, dtype=np.float64), rows, kl_divergence=float(tsne.kl_divergence_))


def plot_view(
    view: EmbeddingView,
    labels: npt.ArrayLike,
    class_names: list[str],
    path: str | Path,
    title: str,
) -> Path:
    """The view as a PNG scatter plot, one colour per class (tab10/tab20), a legend of the classes;
    PCA's axes carry their explained variance. ``labels`` index ``class_names`` (-1: no label, grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = np.asarray(labels, dtype=np.int64)[view.rows]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(8, 7))
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    unlabelled = shown < 0
    if unlabelled.any():
        grey = view.points[unlabelled]
        axes.scatter(grey[:, 0], grey[:, 1], s=4, c="lightgrey", label="no label")
    for index, name in enumerate(class_names):
        members = shown == index
        if members.any():
            points = view.points[members]
            axes.scatter(points[:, 0], points[:, 1], s=4, color=colours(index % colours.N), label=name)
    if view.explained_variance_ratio is not None:
        ratio = view.explained_variance_ratio
        axes.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f}% of the variance)")
        axes.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f}%)")
    else:
        axes.set_xlabel("t-SNE 1")
        axes.set_ylabel("t-SNE 2")
    axes.set_title(title)
    if len(class_names) <= 20:
        axes.legend(markerscale=3, fontsize="small", loc="best")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
