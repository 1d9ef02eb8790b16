"""``semret backbone``: fine-tune a backbone (seed 003), for every command's ``--weights``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semret.app.finetune import finetune_on_dataset
from semret.cli._app import Commands, RestartingProgress, console, progress_bars

app = Commands(help="Backbones: fine-tune one on a labelled dataset.")


@app.command("finetune")
def backbone_finetune(
    dataset: Annotated[
        str, typer.Option("--dataset", metavar="NAME", help="fashion-mnist, cifar10, caltech101, folder...")
    ],
    out: Annotated[Path, typer.Option("--out", metavar="FILE.pth", help="Where to write the backbone's weights.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", metavar="DIR", help="Where the dataset's files are.", show_default=False),
    ] = None,
    backbone: Annotated[
        str, typer.Option("--backbone", metavar="NAME", help="resnet18, resnet34, resnet50...")
    ] = "resnet34",
    weights: Annotated[
        str,
        typer.Option("--weights", metavar="WEIGHTS", help="Start from: imagenet, none (from scratch) or a .pth file."),
    ] = "imagenet",
    image_size: Annotated[
        int | None,
        typer.Option("--image-size", help="Input size in pixels (default the backbone's).", show_default=False),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 64,
    learning_rate: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 1e-4,
    train_limit: Annotated[
        int | None, typer.Option("--train-limit", help="Train on N random train images.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the split, the sample and the training.")] = 0,
    download: Annotated[bool, typer.Option("--download", help="Download the dataset if missing (internet).")] = False,
) -> None:
    """Fine-tune a backbone with cross entropy (Adam, lr 1e-4, 10 epochs: seed 003) and write its
    weights; report its classifier's test accuracy."""
    with progress_bars() as progress:
        report = finetune_on_dataset(
            dataset, out, data_dir=data_dir, backbone=backbone, weights=weights, image_size=image_size,
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, train_limit=train_limit, seed=seed,
            download=download, progress=RestartingProgress(progress),
        )  # fmt: skip
    test = (
        f"{report.test_accuracy:.3f} on {report.test_images:,} test images" if report.test_accuracy is not None else "-"
    )
    console.print(
        f"{report.backbone} fine-tuned from {report.initial_weights} weights on {report.train_images:,} images "
        f"({report.cpu_seconds:.0f} s of CPU): train accuracy {report.train_accuracy:.3f}, test accuracy {test}; "
        f"weights written to {out} (use them with --backbone {report.backbone} --weights {out})"
    )
