"""``semret hash``: train the semantic hash network, encode a collection's images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from semret.app.cimon import (
    check_feature_source,
    train_cimon_on_collection,
    train_cimon_on_dataset,
    train_cimon_on_images,
)
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


METHODS = ("semantic", "cimon")
#: Each method's defaults where the two differ (CIMON's are the paper's: docs/hashing.md).
TRAIN_DEFAULTS = {
    "semantic": {"bits": 48, "epochs": 30, "batch_size": 128, "weight_decay": 0.0},
    "cimon": {"bits": 64, "epochs": 150, "batch_size": 24, "weight_decay": 1e-5},
}


@app.command("train")
def hash_train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the model checkpoint.")],
    data: DataArgument = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="NAME",
            help="semantic (supervised: class embeddings of a hierarchy) or cimon (unsupervised: labels ignored).",
        ),
    ] = "semantic",
    hierarchy: Annotated[
        str | None,
        typer.Option(
            "--hierarchy",
            metavar="NAME|FILE",
            help="semantic: cifar100, fashion-mnist, stl10, or a hierarchy file.",
            show_default=False,
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            metavar="NAME",
            help="Train on this collection's images (features through --backbone) instead of a file.",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            metavar="NAME",
            help="cimon: train on a dataset's files instead (e.g. stl10 --split unlabeled), with --data-dir.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", metavar="DIR", help="cimon: where --dataset's files are.", show_default=False),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="cimon: only this split of --collection (default: all), or --dataset's split (default: train).",
            show_default=False,
        ),
    ] = None,
    bits: Annotated[
        int | None, typer.Option("--bits", help="Code length (default 48 semantic, 64 cimon).", show_default=False)
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="Training epochs (default 30 semantic, 150 cimon).", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", help="Images per training batch (default 128 semantic, 24 cimon).", show_default=False
        ),
    ] = None,
    learning_rate: Annotated[float, typer.Option("--lr", help="SGD learning rate.")] = 1e-3,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[
        float | None,
        typer.Option("--weight-decay", help="SGD weight decay (default 0 semantic, 1e-5 cimon).", show_default=False),
    ] = None,
    classification_weight: Annotated[
        float, typer.Option("--classification-weight", help="semantic: weight of an added cross-entropy term.")
    ] = 0.0,
    views: Annotated[
        int | None,
        typer.Option("--views", help="cimon: augmented views per training image (default 4).", show_default=False),
    ] = None,
    graph_size: Annotated[
        int | None,
        typer.Option(
            "--graph-size", help="cimon: training images, a seeded sample of more (default 5000).", show_default=False
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="cimon: cosine distance at most which a pair is similar (default 0.1).",
            show_default=False,
        ),
    ] = None,
    clusters: Annotated[
        int | None,
        typer.Option(
            "--clusters", help="cimon: spectral clusters refining the graph (default 70).", show_default=False
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            metavar="NAME",
            help="alexnet, resnet18, resnet34, resnet50, efficientnet-lite0 or small-cnn: "
            "encodes a file's images, or makes --collection's features (default efficientnet-lite0).",
            show_default=False,
        ),
    ] = None,
    weights: WeightsOption = None,
    image_size: ImageSizeOption = None,
    finetune: Annotated[
        bool, typer.Option("--finetune", help="semantic: train the backbone too (end to end).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the training.")] = 0,
    cache_dir: CacheDirOption = None,
    db: DbOption = None,
) -> None:
    """Train a hash model on a file's images or features, a collection's images or (CIMON) a
    dataset's files: the semantic hash (supervised, with --hierarchy) or CIMON (unsupervised,
    --method cimon); write a checkpoint."""
    if method not in METHODS:
        raise SemretError(f"unknown --method {method!r}: choose semantic or cimon")
    sources = sum(x is not None for x in (data, collection, dataset))
    if sources != 1:
        raise SemretError(
            "give the training data once: a .npz file, --collection NAME (its images' features), or (cimon) "
            "--dataset NAME"
        )
    if data_dir is not None and dataset is None:
        raise SemretError("--data-dir: only with --dataset")
    defaults = TRAIN_DEFAULTS[method]
    common: dict[str, Any] = {
        "n_bits": bits if bits is not None else defaults["bits"],
        "epochs": epochs if epochs is not None else defaults["epochs"],
        "batch_size": batch_size if batch_size is not None else defaults["batch_size"],
        "learning_rate": learning_rate,
        "momentum": momentum,
        "weight_decay": weight_decay if weight_decay is not None else defaults["weight_decay"],
        "seed": seed,
    }
    if method == "cimon":
        if hierarchy is not None or finetune or classification_weight:
            raise SemretError(
                "--hierarchy, --finetune and --classification-weight are for the semantic hash; CIMON uses no labels"
            )
        given = {"n_views": views, "graph_size": graph_size, "threshold": threshold, "n_clusters": clusters}
        cimon: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        if dataset is not None:
            with progress_bars() as progress:
                cimon_run = train_cimon_on_dataset(
                    dataset, split or "train", out, data_dir=data_dir, backbone=backbone or DEFAULT_BACKBONE,
                    weights=weights, image_size=image_size, cache_dir=cache_dir, progress=StageProgress(progress),
                    **common, **cimon,
                )  # fmt: skip
            _report_cimon(cimon_run, out)
            return
        _train_cimon(
            ctx, out, data, collection, split, backbone, weights, image_size, cache_dir, db, {**common, **cimon}
        )
        return
    if dataset is not None:
        raise SemretError("--dataset: only for --method cimon (the semantic hash trains on a file or --collection)")
    cimon_only = {"--views": views, "--graph-size": graph_size, "--threshold": threshold, "--clusters": clusters}
    stray = [flag for flag, value in cimon_only.items() if value is not None]
    if stray:
        raise SemretError(f"{', '.join(stray)}: only for --method cimon")
    if hierarchy is None:
        raise SemretError("the semantic hash needs --hierarchy (or train CIMON without labels: --method cimon)")
    if split is not None:
        raise SemretError("--split: only for --method cimon")
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
            arrays, hierarchy, out, source=source, classification_weight=classification_weight,
            backbone=hasher_backbone, backbone_weights=hasher_weights, finetune=finetune,
            progress=StageProgress(progress), **common,
        )  # fmt: skip
    console.print(
        f"trained on {trained.images:,} {trained.kind}: final loss {trained.final_loss:.4f}, "
        f"training accuracy (nearest class embedding) {trained.accuracy:.3f}; model written to {out}"
    )


def _train_cimon(
    ctx: typer.Context,
    out: Path,
    data: Path | None,
    collection: str | None,
    split: str | None,
    backbone: str | None,
    weights: str | None,
    image_size: int | None,
    cache_dir: Path | None,
    db: str | None,
    params: dict[str, Any],
) -> None:
    """``hash train --method cimon``: on a collection's images or a file's (features cannot be
    augmented)."""
    chosen = backbone or DEFAULT_BACKBONE
    with progress_bars() as progress:
        if collection is not None:
            trained = train_cimon_on_collection(
                engine_for(ctx, db), collection, out, backbone=chosen, weights=weights, image_size=image_size,
                split=split, cache_dir=cache_dir, progress=StageProgress(progress), **params,
            )  # fmt: skip
        else:
            assert data is not None
            if split is not None:
                raise SemretError("--split: only with --collection")
            _not_with_a_file(cache_dir=cache_dir)
            arrays = read_labelled_arrays(data)
            if arrays.kind != "images":
                raise SemretError(
                    f"{data} holds features: CIMON augments images, so give a file of images or --collection"
                )
            trained = train_cimon_on_images(
                arrays.data, out, backbone=chosen, weights=weights, image_size=image_size,
                progress=StageProgress(progress), **params,
            )  # fmt: skip
    _report_cimon(trained, out)


def _report_cimon(trained: Any, out: Path) -> None:
    console.print(
        f"CIMON trained without labels on {trained.images:,} images x {trained.n_views} views "
        f"(views {trained.view_seconds:.1f} s, graph and training {trained.train_seconds:.1f} s): "
        f"final loss {trained.final_loss:.4f}, similar pairs in the graph {trained.positive_rate:.3f}; "
        f"model written to {out}"
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
    network = _cimon_backbone(hasher, model, backbone, weights, image_size) if data is None else None
    with progress_bars() as progress:
        if data is None:
            arrays = collection_features(
                engine, collection, network or backbone or DEFAULT_BACKBONE, weights, image_size,
                cache_dir=cache_dir, progress=StageProgress(progress),
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


def _cimon_backbone(hasher: Any, model: Path, backbone: str | None, weights: str | None, image_size: int | None) -> Any:
    """For a CIMON model: the backbone its checkpoint names (what is given overrides it), made and
    checked against the checkpoint before any feature is computed; None for a semantic model."""
    from semret.hashing.cimon import CimonHasher
    from semret.vision.backbones import make_backbone
    from semret.vision.features import weights_id

    if not isinstance(hasher, CimonHasher):
        return None
    trained_on = hasher.feature_source_ or {}
    name = backbone or trained_on.get("backbone")
    if name is None:
        raise SemretError(f"{model}: the CIMON model does not name its backbone: give --backbone (and --image-size)")
    named = trained_on.get("weights")
    network = make_backbone(
        name, weights or (named if named in ("imagenet", "none") else None), image_size or trained_on.get("image_size"),
        seed=0,
    )  # fmt: skip
    check_feature_source(hasher, network.name, weights_id(network), network.input_size, str(model))
    return network
