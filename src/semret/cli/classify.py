"""``semret classify``: class probabilities for a stored collection, the word source of IWAN."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from semret.app.classify import Classification, classify_collection
from semret.app.features import DEFAULT_BACKBONE
from semret.app.iwan import collection_aliases, label_aliases, link_predictions
from semret.cli._app import (
    BackboneOption,
    CacheDirOption,
    CollectionOption,
    Commands,
    DbOption,
    ImageSizeOption,
    RestartingProgress,
    WeightsOption,
    console,
    engine_for,
    progress_bars,
)
from semret.cli.iwan import AliasesOption, print_link_report
from semret.iwan.links import write_predictions

app = Commands()

TrainCollectionOption = Annotated[
    str | None,
    typer.Option(
        "--train-collection", metavar="NAME",
        help="Train the classifier on this collection's images (default: the collection's train split).",
        show_default=False,
    ),
]  # fmt: skip
HiddenOption = Annotated[
    int, typer.Option("--hidden", min=0, help="Classifier: units of a hidden ReLU layer (0: softmax regression).")
]
ClassifierEpochsOption = Annotated[int, typer.Option("--epochs", min=1, help="Classifier: training epochs.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seeds the classifier's training.")]


def classify_with_progress(
    engine: Engine,
    collection: str,
    train_collection: str | None,
    backbone: str | None,
    weights: str | None,
    image_size: int | None,
    cache_dir: Path | None,
    hidden: int,
    epochs: int,
    seed: int,
) -> Classification:
    """Classify a collection with progress bars, and say how well the classifier does."""
    with progress_bars() as progress:
        found = classify_collection(
            engine, collection, train_collection, backbone or DEFAULT_BACKBONE, weights, image_size, cache_dir,
            hidden, epochs, seed, RestartingProgress(progress),
        )  # fmt: skip
    features = found.features
    console.print(
        f"classifier trained on {found.train_images:,} images of {found.train_collection} ({features.backbone} "
        f"features, {features.image_size} px): accuracy {found.train_accuracy:.3f} on them, {found.accuracy:.3f} on "
        f"the {len(found.predictions.image_ids):,} images of {collection}"
    )
    return found


@app.command("classify")
def classify(
    ctx: typer.Context,
    collection: CollectionOption,
    train_collection: TrainCollectionOption = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    hidden: HiddenOption = 0,
    epochs: ClassifierEpochsOption = 30,
    seed: SeedOption = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the predictions to this .npz (what `iwan link` takes) "
            "instead of linking the images' words in the store.",
            show_default=False,
        ),
    ] = None,
    aliases: AliasesOption = None,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Class probabilities of a collection's images, linked to norm words for IWAN.

    A classifier trained on backbone features (of the collection's train split, or of
    --train-collection) predicts every image; each image is then linked to the norm words of its
    classes, as `semret iwan link` does, or with --out the predictions are written to a file."""
    engine = engine_for(ctx, db)
    found = classify_with_progress(
        engine, collection, train_collection, backbone, weights, image_size, cache_dir, hidden, epochs, seed
    )
    if out is not None:
        console.print(f"predictions written to {write_predictions(out, found.predictions).resolve()}")
        return
    table = label_aliases(aliases=aliases) if aliases else collection_aliases(engine, collection)
    print_link_report(collection, link_predictions(engine, collection, found.predictions, table))
