"""``semret classify``: class probabilities for a stored collection, the word source of IWAN."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from semret.app.classify import Classification, classify_collection, save_classifier
from semret.app.code_classify import DEFAULT_HIDDEN, CodeClassification, classify_from_codes, plot_confusion
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
from semret.errors import SemretError
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
    int | None,
    typer.Option(
        "--hidden", min=0, show_default=False,
        help="Classifier: units of a hidden ReLU layer (0: softmax regression; default 0 on features, "
        f"{DEFAULT_HIDDEN} on --codes).",
    ),
]  # fmt: skip
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
    hidden: HiddenOption = None,
    epochs: ClassifierEpochsOption = 30,
    seed: SeedOption = 0,
    codes: Annotated[
        str | None,
        typer.Option(
            "--codes",
            metavar="MODEL",
            show_default=False,
            help="Classify from this hash model's stored codes instead: train on the train split's codes, "
            "report the test accuracy and confusion matrix (nothing is linked).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE", help="With --codes: the confusion matrix as a PNG.", show_default=False),
    ] = None,
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
    save: Annotated[
        Path | None,
        typer.Option(
            "--save-classifier",
            metavar="FILE",
            help="Also write the trained classifier (with its backbone) to FILE, for `semret attack --model`.",
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
    classes, as `semret iwan link` does, or with --out the predictions are written to a file.

    With --codes MODEL the classifier learns from a hash model's codes (`semret hash encode`) and
    is tested on the collection's test split (seed 004: an MLP on CIMON's codes)."""
    engine = engine_for(ctx, db)
    if codes is not None:
        if out is not None or aliases or backbone or weights or image_size or save is not None:
            raise SemretError(
                "--codes classifies stored codes: leave out --out, --aliases, --save-classifier and the backbone "
                "options"
            )
        with progress_bars() as progress:
            by_codes = classify_from_codes(
                engine, codes, collection, train_collection, DEFAULT_HIDDEN if hidden is None else hidden, epochs,
                seed, RestartingProgress(progress),
            )  # fmt: skip
        print_code_classification(by_codes)
        if plot is not None:
            console.print(f"confusion matrix written to {plot_confusion(by_codes, plot).resolve()}")
        return
    if plot is not None:
        raise SemretError("--plot draws the confusion matrix of --codes")
    found = classify_with_progress(
        engine, collection, train_collection, backbone, weights, image_size, cache_dir, hidden or 0, epochs, seed
    )
    if save is not None:
        console.print(f"classifier written to {save_classifier(found, save).resolve()}")
    if out is not None:
        console.print(f"predictions written to {write_predictions(out, found.predictions).resolve()}")
        return
    table = label_aliases(aliases=aliases) if aliases else collection_aliases(engine, collection)
    print_link_report(collection, link_predictions(engine, collection, found.predictions, table))


def print_code_classification(found: CodeClassification) -> None:
    """The accuracy and the confusion matrix (rows: true class, columns: predicted) as a table."""
    console.print(
        f"classifier on the {found.n_bits}-bit codes of {found.model}: trained on {found.train_images:,} images of "
        f"{found.train_collection} (accuracy {found.train_accuracy:.3f}, {found.train_seconds:.1f} s CPU), "
        f"test accuracy {found.test_accuracy:.3f} on {found.test_images:,} images of {found.collection}"
    )
    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("class")
    for number in range(len(found.class_names)):
        table.add_column(str(number), justify="right")
    for number, (name, row) in enumerate(zip(found.class_names, found.confusion, strict=True)):
        table.add_row(f"{number} {name}", *(str(int(count)) for count in row))
    console.print(table)
