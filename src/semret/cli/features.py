"""``semret features``: a stored collection's features through a backbone (cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semret.app.features import DEFAULT_BACKBONE, collection_features
from semret.cli._app import (
    BackboneOption,
    CacheDirOption,
    CollectionOption,
    Commands,
    DbOption,
    ImageSizeOption,
    StageProgress,
    WeightsOption,
    console,
    engine_for,
    progress_bars,
)
from semret.vision.arrays import write_labelled_arrays

EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="ENGINE",
        help="What runs the network: auto (ONNX Runtime for the pretrained backbones, torch for small-cnn), "
        "onnx or torch.",
    ),
]

app = Commands(help="Image features: extract a collection's features through a backbone (cached).")


@app.command("extract")
def features_extract(
    ctx: typer.Context,
    collection: CollectionOption,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", metavar="SPLIT", help="Only the images of this split (train or test).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the features to this .npz (image_ids, features, "
            "labels, class_names), as `hash train`, `index build` and your own code read them.",
            show_default=False,
        ),
    ] = None,
    cache_dir: CacheDirOption = None,
    feature_engine: EngineOption = "auto",
    db: DbOption = None,
) -> None:
    """The features of a collection's images through a backbone, computed once into the feature
    cache (later calls, and `semret eval` on the same images, read them from there)."""
    with progress_bars() as progress:
        found = collection_features(
            engine_for(ctx, db), collection, backbone or DEFAULT_BACKBONE, weights, image_size, split,
            cache_dir, progress=StageProgress(progress), feature_engine=feature_engine,
        )  # fmt: skip
    arrays = found.arrays
    how = "read from the cache" if found.cached else f"computed on {found.engine}"
    if found.onnx_max_abs_diff is not None:
        how += f" (max |ORT - torch| {found.onnx_max_abs_diff:.2g} on the probe batch; network {found.onnx_file})"
    console.print(
        f"features of {len(arrays.image_ids):,} images of {collection} ({found.backbone}, {found.weights} weights, "
        f"{found.image_size} px, {arrays.data.shape[1]} dims) {how}; cache {found.cache_dir}"
    )
    if out is not None:
        console.print(f"written to {write_labelled_arrays(out, arrays).resolve()}")
