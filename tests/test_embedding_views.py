"""Embedding views (`semret plot embeddings`, seed 003): PCA and t-SNE against scikit-learn, the
picture, and the command's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.decomposition import PCA

from semret.errors import SemretError
from semret.evaluation.embedding_views import plot_view, project

from helpers import ok, semret


def clustered(n_per: int, n_classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_pca_is_scikit_learns_on_the_unit_vectors() -> None:
    vectors, _ = clustered(30, 4, 12, seed=0)
    view = project(vectors, "pca", components=5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    reference = PCA(5).fit(unit)
    np.testing.assert_allclose(view.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-6)
    expected = reference.transform(unit)[:, :2]
    for axis in range(2):  # a component's sign is arbitrary
        sign = np.sign(expected[:, axis] @ view.points[:, axis])
        np.testing.assert_allclose(view.points[:, axis], sign * expected[:, axis], atol=1e-8)
    assert view.rows.tolist() == list(range(120))


def test_tsne_keeps_the_classes_apart_and_is_seeded() -> None:
    vectors, labels = clustered(40, 3, 60, seed=1)
    view = project(vectors, "tsne", perplexity=15, seed=2)
    assert view.points.shape == (120, 2) and view.kl_divergence is not None and view.kl_divergence > 0
    distances = np.linalg.norm(view.points[:, None] - view.points[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert np.mean(labels[distances.argmin(axis=1)] == labels) > 0.95  # chance: 1/3
    again = project(vectors, "tsne", perplexity=15, seed=2)
    np.testing.assert_allclose(again.points, view.points)
    sample = project(vectors, "pca", limit=50, seed=3)
    assert len(sample.rows) == 50 and np.all(np.diff(sample.rows) > 0)


def test_the_picture_has_a_colour_per_class(tmp_path: Path) -> None:
    vectors, labels = clustered(30, 3, 8, seed=4)
    labels[:5] = -1  # unlabelled points are drawn grey
    out = plot_view(project(vectors, "pca"), labels, ["ant", "bee", "wasp"], tmp_path / "v.png", "a view")
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 400 and image.shape[1] > 400
    tab10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]  # the first three colours of tab10
    for colour in tab10:
        assert (np.abs(image.astype(int) - colour).sum(axis=2) < 30).sum() > 20, colour


def test_bad_input_is_refused() -> None:
    with pytest.raises(SemretError, match="method"):
        project(np.ones((5, 3)), "umap")
    with pytest.raises(SemretError, match="zero vectors"):
        project(np.zeros((5, 3)), "pca")
    with pytest.raises(SemretError, match="perplexity must be between 0 and the 5 points"):
        project(np.random.default_rng(0).normal(size=(5, 3)), "tsne", perplexity=30)


def test_the_command_draws_a_features_file(tmp_path: Path) -> None:
    vectors, labels = clustered(20, 3, 10, seed=5)
    names = np.array(["ant", "bee", "wasp"])
    file = tmp_path / "features.npz"
    np.savez(file, image_ids=np.arange(60), features=vectors.astype(np.float32), labels=labels, class_names=names)
    drawn = ok("plot", "embeddings", "--features", file, "--method", "pca", "--out", tmp_path / "pca.png")
    assert "pca of 60 of 60 vectors (10-d); explained variance of the first 10 components:" in drawn.stdout
    assert (tmp_path / "pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tsne = ok(
        "plot", "embeddings", "--features", file, "--method", "tsne", "--limit", "40", "--out", tmp_path / "t.png"
    )
    assert "tsne of 40 of 60 vectors (10-d); KL divergence" in tsne.stdout
    for args, message in (
        (["--features", file, "--out", tmp_path / "x.jpg"], "the plot is a PNG"),
        (["--out", tmp_path / "x.png"], "give the embeddings"),
        (
            ["--features", file, "--model", "m", "--out", tmp_path / "x.png"],
            "--model and --backbone are for --collection",
        ),
        (["--features", file, "--method", "umap", "--out", tmp_path / "x.png"], "method"),
    ):
        bad = semret("plot", "embeddings", *args)
        assert bad.exit_code == 1 and message in bad.stderr, bad.stderr
