"""``semret iwan``: link a collection's images to norm words (or, ``--imagenet``, to the top-10
words of a backbone's ImageNet head), build the image-word graph (``--published``: as published)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semret.app.features import DEFAULT_BACKBONE
from semret.app.iwan import (
    ImagenetLinkReport,
    LinkReport,
    build_graph,
    build_published_graph,
    collection_aliases,
    label_aliases,
    link_imagenet,
    link_predictions,
)
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
from semret.errors import SemretError
from semret.iwan.links import read_predictions
from semret.sql import migrations

app = Commands(help="IWAN: link images to words and build the image-word graph.")

AliasesOption = Annotated[
    Path | None, typer.Option("--aliases", metavar="FILE", help="A label alias file of your own.", show_default=False)
]
CreateOption = Annotated[bool, typer.Option("--create", help="Create the collection if it does not exist.")]
AddImagesOption = Annotated[
    bool, typer.Option("--add-images", help="Add images that the collection does not hold yet.")
]


def print_link_report(collection: str, report: LinkReport) -> None:
    table = Table(title="Class labels -> norm words")
    for column in ("label", "words", "how"):
        table.add_column(column)
    for label_words in report.vocabulary.mapping.values():
        table.add_row(label_words.label, ", ".join(label_words.words), label_words.how)
    console.print(table)
    images, words = report.images, report.image_words
    console.print(
        f"collection {collection}: images inserted {images.inserted:,}, updated {images.updated:,}; "
        f"image words inserted {words.inserted:,}, updated {words.updated:,}, deleted {words.deleted:,}"
    )


def print_imagenet_report(report: ImagenetLinkReport) -> None:
    images, words = report.images, report.imagenet_words
    console.print(
        f"collection {report.collection}: top-10 ImageNet words of {report.backbone}; images inserted "
        f"{images.inserted:,}, updated {images.updated:,}; ImageNet words inserted {words.inserted:,}, "
        f"updated {words.updated:,}, deleted {words.deleted:,}"
    )


@app.command("link")
def iwan_link(
    ctx: typer.Context,
    collection: CollectionOption,
    predictions: Annotated[
        Path | None,
        typer.Argument(
            help=".npz with image_ids, probabilities (images x classes), class_names[, labels]. Without it, "
            "the collection's images are classified (as `semret classify` does).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", metavar="NAME", help="Use the label aliases shipped for this dataset.", show_default=False
        ),
    ] = None,
    aliases: AliasesOption = None,
    create: CreateOption = False,
    add_images: AddImagesOption = False,
    imagenet: Annotated[
        bool,
        typer.Option(
            "--imagenet",
            help="Link each image to the top-10 words of the backbone's own ImageNet classifier (IWAN as "
            "published, `iwan build --published`): on the collection's images, or on the FILE given "
            "(.npz of the backbone's features, or of images).",
        ),
    ] = False,
    train_collection: Annotated[
        str | None,
        typer.Option(
            "--train-collection",
            metavar="NAME",
            help="Without predictions: train the classifier on "
            "this collection (default: the collection's train split).",
            show_default=False,
        ),
    ] = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Store a collection's images and link each to the norm words of its predicted classes."""
    table = label_aliases(dataset, aliases)
    engine = engine_for(ctx, db)
    migrations.require_current_schema(engine)
    if imagenet:
        options = {"--train-collection": train_collection, "--dataset": dataset, "--aliases": aliases}
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            raise SemretError(f"{', '.join(given)}: not with --imagenet (its words are ImageNet's)")
        with progress_bars() as progress:
            linked = link_imagenet(
                engine, collection, predictions, backbone or DEFAULT_BACKBONE, weights, image_size, cache_dir,
                RestartingProgress(progress), create=create, add_images=add_images,
            )  # fmt: skip
        print_imagenet_report(linked)
        return
    if predictions is None:
        from semret.cli.classify import classify_with_progress

        found = classify_with_progress(
            engine, collection, train_collection, backbone, weights, image_size, cache_dir, 0, 30, 0
        )
        report = link_predictions(
            engine, collection, found.predictions, table or collection_aliases(engine, collection)
        )
    else:
        options = {"--train-collection": train_collection, "--backbone": backbone, "--weights": weights}
        given = [flag for flag, value in {**options, "--image-size": image_size}.items() if value is not None]
        if given:
            raise SemretError(f"{', '.join(given)}: only without a predictions file (to classify the collection)")
        report = link_predictions(
            engine, collection, read_predictions(predictions), table, create=create, add_images=add_images
        )
    print_link_report(collection, report)


@app.command("build")
def iwan_build(
    ctx: typer.Context,
    collection: CollectionOption,
    top_iwk: Annotated[int, typer.Option("--top-iwk", help="Words per image (1-10).")] = 4,
    top_wwk: Annotated[int, typer.Option("--top-wwk", help="Associates per word (1-10).")] = 4,
    normed_only: Annotated[bool, typer.Option("--normed-only", help="Only normed cue-target pairs.")] = False,
    backward: Annotated[bool, typer.Option("--backward", help="Add target -> cue edges weighted by BSG.")] = False,
    published: Annotated[
        bool,
        typer.Option(
            "--published",
            help="The graph as published (words of an ImageNet classifier: `iwan link --imagenet`; label links; "
            "every pair of words the norms associate).",
        ),
    ] = False,
    label_strength: Annotated[
        float | None,
        typer.Option(
            "--label-strength",
            metavar="S",
            help="With --published: image -> label link strength, (0, 1] (1.0).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Build (or rebuild) the IWAN graph of a collection from the loaded norms."""
    if published:
        if normed_only or backward:
            raise SemretError("--normed-only and --backward are options of semret's graph, not of --published")
        found = build_published_graph(
            engine_for(ctx, db), collection, top_iwk, top_wwk, 1.0 if label_strength is None else label_strength
        )
        fallback = "".join(f"; {node} looks up {word}" for node, word in found.fallback_lookups.items())
        console.print(
            f"published IWAN graph of {collection}: {found.words:,} words, {found.word_edges:,} word edges, "
            f"{found.images:,} images with {found.image_links:,} links (label {found.settings.label_strength:g} + "
            f"top-IWK {top_iwk}; top-WWK {top_wwk}){fallback}"
        )
        return
    if label_strength is not None:
        raise SemretError("--label-strength: only with --published")
    report = build_graph(engine_for(ctx, db), collection, top_iwk, top_wwk, normed_only, backward)
    console.print(
        f"IWAN graph of {collection}: {report.words:,} words, {report.word_edges:,} word edges "
        f"(top-WWK {top_wwk}), {report.images:,} images with {report.image_links:,} links (top-IWK {top_iwk})"
    )
