"""``semret index``: build a vector index over features or stored embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semret.app.features import collection_features
from semret.app.indexes import (
    IndexVectors,
    build_index,
    collection_feature_vectors,
    features_file_vectors,
    parse_index_spec,
    stored_embeddings,
)
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

app = Commands(help="Vector indexes: exact kNN, LSH, k-means (IVF), neural LSH.")


def _vectors(
    ctx: typer.Context,
    features: Path | None,
    collection: str | None,
    model: str | None,
    backbone: str | None,
    weights: str | None,
    image_size: int | None,
    cache_dir: Path | None,
    db: str | None,
) -> IndexVectors:
    """Vectors to index: a features file, a collection's stored embeddings under a hash model, or a
    collection's features through a backbone."""
    if (features is None) == (collection is None):
        raise SemretError(
            "give exactly one source: --features FILE.npz, or --collection with --model (its stored embeddings) "
            "or --backbone (its features)"
        )
    options = {"--backbone": backbone, "--weights": weights, "--image-size": image_size, "--cache-dir": cache_dir}
    feature_options = [flag for flag, value in options.items() if value is not None]
    if features is not None:
        if feature_options:
            raise SemretError(f"{', '.join(feature_options)}: only with --collection (a file holds its features)")
        return features_file_vectors(features)
    engine = engine_for(ctx, db)
    if model is not None:
        if feature_options:
            raise SemretError(f"{', '.join(feature_options)}: not with --model (the embeddings are stored)")
        return stored_embeddings(engine, collection or "", model)
    if backbone is None:
        raise SemretError(
            "--collection needs --model (index a hash model's stored embeddings) or --backbone (index its features)"
        )
    with progress_bars() as progress:
        found = collection_features(
            engine, collection or "", backbone, weights, image_size, cache_dir=cache_dir,
            progress=StageProgress(progress),
        )  # fmt: skip
    return collection_feature_vectors(found)


@app.command("build")
def index_build(
    ctx: typer.Context,
    spec: Annotated[
        str,
        typer.Option(
            "--spec",
            metavar="KIND[:NAME=VALUE,...]",
            help="The index and its parameters, e.g. exact, lsh:n_bits=8,n_tables=8 or kmeans:n_probe=4 "
            "(docs/search.md; kinds: exact, lsh, kmeans, neural-lsh, neural-lsh-knn, fourier-lsh).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the index (.npz).")],
    features: Annotated[
        Path | None, typer.Option("--features", metavar="FILE", help="A features .npz to index.", show_default=False)
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            metavar="NAME",
            help="Index a collection: its stored embeddings (--model) or its features (--backbone).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="NAME", help="The hash model of the embeddings.", show_default=False),
    ] = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Build a vector index over features (a file, or a collection's) or stored embeddings and save it to a file."""
    parsed = parse_index_spec(spec)  # checked before any vector is read
    source = _vectors(ctx, features, collection, model, backbone, weights, image_size, cache_dir, db)
    built = build_index(parsed, source, out)
    kind = parsed.kind
    table = Table(title=f"{kind} index parameters")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in built.params.items():
        table.add_row(name, "(default)" if value is None else str(value))
    if not built.params:
        table.add_row("(none)", "")
    console.print(table)
    console.print(
        f"{kind} index of {built.vectors:,} vectors ({built.dims} dims) built in {built.seconds:.2f} s; "
        f"spec {built.index.spec}; written to {out}"
    )
