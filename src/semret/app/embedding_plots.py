"""`semret plot embeddings`: a 2-d view (PCA or t-SNE, `semret.evaluation.embedding_views`) of a
collection's features through a backbone, of its stored embeddings under a hash model, or of a
features file, coloured by class, written as a PNG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.errors import SemretError
from semret.evaluation.embedding_views import EmbeddingView, plot_view, project

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EmbeddingPlot:
    """What was drawn, from what, and where."""

    source: str
    view: EmbeddingView
    n_vectors: int
    dims: int
    out: Path


def _labels_of(names: list[str | None]) -> tuple[npt.NDArray[np.int64], list[str]]:
    classes = sorted({name for name in names if name is not None})
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[n] if n is not None else -1 for n in names], dtype=np.int64), classes


def plot_embeddings(
    vectors: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    class_names: list[str],
    out: str | Path,
    source: str,
    *,
    method: str = "pca",
    limit: int | None = 5000,
    seed: int = 0,
) -> EmbeddingPlot:
    """Project the vectors and draw them (labels index ``class_names``; -1: no label)."""
    view = project(vectors, method, limit=limit, seed=seed)
    shown = f"{len(view.rows):,} of {len(vectors):,}" if len(view.rows) < len(vectors) else f"{len(vectors):,}"
    title = f"{method.upper() if method == 'pca' else 't-SNE'} of {source} ({shown} images, {vectors.shape[1]}-d)"
    path = plot_view(view, labels, class_names, out, title)
    return EmbeddingPlot(source, view, len(vectors), int(vectors.shape[1]), path)


def model_embeddings(
    engine: Engine, collection: str, model: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], list[str]]:
    """A collection's stored embeddings under a hash model, with their labels."""
    from semret.sql.hash_store import load_hashes, model_by_name

    stored = load_hashes(engine, model_by_name(engine, model), collection)
    labels, classes = _labels_of(stored.labels)
    return stored.embeddings, labels, classes


def check_output(out: str | Path) -> Path:
    """The plot's path: a .png."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise SemretError(f"--out {path}: the plot is a PNG, give a file ending in .png")
    return path
