"""``semret plot``: pictures of what semret stores (embedding views)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semret.app.embedding_plots import check_output, model_embeddings, plot_embeddings
from semret.app.features import DEFAULT_BACKBONE, collection_features
from semret.cli._app import (
    BackboneOption,
    CacheDirOption,
    Commands,
    DbOption,
    ImageSizeOption,
    StageProgress,
    WeightsOption,
    console,
    engine_for,
    progress_bars,
)
from semret.errors import SemretError
from semret.vision.arrays import read_labelled_arrays

app = Commands(help="Pictures: 2-d views of embeddings.")


@app.command("embeddings")
def plot_embeddings_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", metavar="FILE.png", help="Where to write the PNG.")],
    collection: Annotated[
        str | None,
        typer.Option("--collection", metavar="NAME", help="The collection's images.", show_default=False),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option("--features", metavar="FILE", help="A features .npz instead of a collection.", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="NAME",
            help="With --collection: the stored embeddings of this hash model, not backbone features.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[str, typer.Option("--method", metavar="pca|tsne", help="The projection.")] = "pca",
    limit: Annotated[int, typer.Option("--limit", help="At most this many images (a seeded sample).")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sample and the projection.")] = 0,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """A 2-d view (PCA with its explained variance, or t-SNE) of embeddings, coloured by class."""
    path = check_output(out)
    if (collection is None) == (features is None):
        raise SemretError("give the embeddings: --collection NAME (with --backbone or --model), or --features FILE")
    if features is not None:
        if model is not None or backbone is not None:
            raise SemretError("--model and --backbone are for --collection: a features file brings its vectors")
        arrays = read_labelled_arrays(features)
        if arrays.kind != "features":
            raise SemretError(f"{features} holds images: extract features first (`semret features extract`)")
        vectors, labels, classes, source = arrays.data, arrays.labels, arrays.class_names, features.name
    elif model is not None:
        if backbone is not None:
            raise SemretError("--model shows the model's stored embeddings: leave out --backbone")
        vectors, labels, classes = model_embeddings(engine_for(ctx, db), collection, model)  # type: ignore[arg-type]
        source = f"{collection}, model {model}"
    else:
        assert collection is not None
        with progress_bars() as progress:
            found = collection_features(
                engine_for(ctx, db), collection, backbone or DEFAULT_BACKBONE, weights, image_size,
                cache_dir=cache_dir, progress=StageProgress(progress),
            )  # fmt: skip
        arrays = found.arrays
        vectors, labels, classes = arrays.data, arrays.labels, arrays.class_names
        source = f"{collection}, {found.backbone} features"
    with progress_bars() as progress:
        task = progress.add_task(f"{method} of {min(limit, len(vectors)):,} vectors", total=None)
        drawn = plot_embeddings(vectors, labels, classes, path, source, method=method, limit=limit, seed=seed)
        progress.update(task, total=1, completed=1)
    view = drawn.view
    extra = ""
    if view.explained_variance_ratio is not None:
        ratio = view.explained_variance_ratio
        extra = (
            f"; explained variance of the first {len(ratio)} components: "
            + ", ".join(f"{r:.3f}" for r in ratio)
            + f" (the two shown: {ratio[0] + ratio[1]:.3f})"
        )
    elif view.kl_divergence is not None:
        extra = f"; KL divergence {view.kl_divergence:.3f}"
    console.print(
        f"{method} of {len(view.rows):,} of {drawn.n_vectors:,} vectors ({drawn.dims}-d){extra}; written to {path}"
    )
