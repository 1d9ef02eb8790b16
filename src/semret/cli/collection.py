"""``semret collection``: import datasets into collections, list them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semret.app.collections import import_collection, list_collections
from semret.cli._app import Commands, DbOption, JsonOption, console, engine_for

app = Commands(help="Image collections: import datasets, list them.")


@app.command("import")
def collection_import(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", metavar="NAME", help="cifar10, cifar100, fashion-mnist, stl10, caltech101 or folder."
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", metavar="DIR", help="Where the dataset's files are (needed for folder).", show_default=False
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="SPLIT",
            help="train, test or all (train then test). Default: test, else all.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="The collection (default: DATASET-SPLIT).", show_default=False),
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Fetch Fashion-MNIST or CIFAR with torchvision if missing.")
    ] = False,
    image_size: Annotated[
        int, typer.Option("--image-size", min=1, help="folder: side of the square images are cropped to.")
    ] = 224,
    db: DbOption = None,
) -> None:
    """Import a dataset split's images (ids, labels, splits, sources) into a collection. Importing
    again changes nothing; importing another split into the same collection adds it."""
    report = import_collection(engine_for(ctx, db), dataset, split, data_dir, name, download, image_size)
    console.print(
        f"collection {report.collection}: {report.images:,} images of {dataset} ({report.split}), "
        f"{report.classes} classes; added {report.counts.inserted:,}, updated {report.counts.updated:,}, "
        f"unchanged {report.unchanged:,}"
    )


@app.command("list")
def collection_list(ctx: typer.Context, as_json: JsonOption = False, db: DbOption = None) -> None:
    """The collections with their dataset, images (per split) and images with IWAN words."""
    summaries = list_collections(engine_for(ctx, db))
    if as_json:
        print(json.dumps([asdict(summary) for summary in summaries]))
        return
    table = Table(title="Collections")
    for column in ("name", "dataset", "images", "splits", "with words"):
        right = column in ("images", "with words")
        table.add_column(column, justify="right" if right else "left", no_wrap=column == "name")  # names are typed
    for summary in summaries:
        splits = ", ".join(f"{split} {count:,}" for split, count in summary.splits.items())
        table.add_row(
            summary.name, summary.dataset or "", f"{summary.images:,}", splits, f"{summary.images_with_words:,}"
        )
    if not summaries:
        table.add_row("(none)", "", "", "", "")
    console.print(table)
