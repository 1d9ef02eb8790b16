"""``semret hash``: train the semantic hash network, encode a collection's images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semret.app.features import DEFAULT_BACKBONE, collection_features
from semret.app.hashing import encode_and_store, load_hasher, train_hasher
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
from semret.cli.iwan import AddImagesOption, CreateOption
from semret.errors import SemretError
from semret.vision.arrays import LabelledArrays, read_labelled_arrays

app = Commands(help="Semantic hashing: train the hash network, encode images.")

DataArgument = Annotated[
    Path | None,
    typer.Argument(
        help=".npz with image_ids, labels, class_names and images or features. Instead of a file: --collection.",
        show_default=False,
    ),
]


def _not_with_a_file(**given: object) -> None:
    """Feature options mean nothing for a file: an error naming those given."""
    flags = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
    if flags:
        raise SemretError(
            f"{', '.join(flags)}: only for a collection's features, not with a file (it brings its own images "
            "or features)"
        )


@app.command("train")
def hash_train(
    ctx: typer.Context,
    hierarchy: Annotated[
        str, typer.Option("--hierarchy", metavar="NAME|FILE", help="cifar100, fashion-mnist, or a hierarchy file.")
    ],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the model checkpoint.")],
    data: DataArgument = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            metavar="NAME",
            help="Train on this collection's features (through --backbone) instead of a file.",
            show_default=False,
        ),
    ] = None,
    bits: Annotated[int, typer.Option("--bits", help="Hash layer units = code length.")] = 48,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per training batch.")] = 128,
    learning_rate: Annotated[float, typer.Option("--lr", help="SGD learning rate.")] = 1e-3,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="SGD weight decay.")] = 0.0,
    classification_weight: Annotated[
        float, typer.Option("--classification-weight", help="Weight of an added cross-entropy term.")
    ] = 0.0,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            metavar="NAME",
            help="alexnet, resnet50, efficientnet-lite0 or small-cnn: "
            "encodes a file's images, or makes --collection's features (default efficientnet-lite0).",
            show_default=False,
        ),
    ] = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    finetune: Annotated[bool, typer.Option("--finetune", help="Train the backbone too (end to end).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the training.")] = 0,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Train the semantic hash network on labelled images or features (a file, or a collection's
    features); write a checkpoint."""
    if (data is None) == (collection is None):
        raise SemretError("give the training data: a .npz file, or --collection NAME (its features)")
    arrays: LabelledArrays
    with progress_bars() as progress:
        if collection is not None:
            if finetune:
                raise SemretError("--finetune trains the backbone on images: give a file of images, not --collection")
            found = collection_features(
                engine_for(ctx, db), collection, backbone or DEFAULT_BACKBONE, weights, image_size,
                cache_dir=cache_dir, progress=StageProgress(progress),
            )  # fmt: skip
            arrays, source, hasher_backbone, hasher_weights = found.arrays, f"the features of {collection}", None, None
        elif data is not None:
            _not_with_a_file(image_size=image_size, cache_dir=cache_dir)
            arrays, source, hasher_backbone, hasher_weights = read_labelled_arrays(data), str(data), backbone, weights
        trained = train_hasher(
            arrays, hierarchy, out, source=source, n_bits=bits, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
            classification_weight=classification_weight, backbone=hasher_backbone, backbone_weights=hasher_weights,
            finetune=finetune, seed=seed, progress=StageProgress(progress),
        )  # fmt: skip
    console.print(
        f"trained on {trained.images:,} {trained.kind}: final loss {trained.final_loss:.4f}, "
        f"training accuracy (nearest class embedding) {trained.accuracy:.3f}; model written to {out}"
    )


@app.command("encode")
def hash_encode(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A checkpoint written by `semret hash train`.")],
    collection: Annotated[
        str,
        typer.Option(
            "--collection",
            metavar="NAME",
            help="The image collection (without a file: encode its images' features, through --backbone).",
        ),
    ],
    data: DataArgument = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="The model's name in the store (default: file stem).", show_default=False
        ),
    ] = None,
    create: CreateOption = False,
    add_images: AddImagesOption = False,
    backbone: BackboneOption = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Encode a collection's images to embeddings and binary codes, and store them. Give the same
    --backbone and --image-size as the model was trained with."""
    hasher = load_hasher(model)
    engine = engine_for(ctx, db)
    with progress_bars() as progress:
        if data is None:
            arrays = collection_features(
                engine, collection, backbone or DEFAULT_BACKBONE, weights, image_size, cache_dir=cache_dir,
                progress=StageProgress(progress),
            ).arrays  # fmt: skip
        else:
            _not_with_a_file(backbone=backbone, weights=weights, image_size=image_size, cache_dir=cache_dir)
            arrays = read_labelled_arrays(data)
        encoded = encode_and_store(
            engine, hasher, model, arrays, collection, name, create=create, add_images=add_images,
            progress=StageProgress(progress),
        )  # fmt: skip
    console.print(
        f"model {encoded.model.name} ({encoded.model.n_bits} bits): {encoded.images:,} images of "
        f"{collection} encoded; stored {encoded.counts.inserted:,} new, {encoded.counts.updated:,} changed"
    )
