"""`semret backbone finetune`: seed 003's fine-tuning of a backbone on a labelled dataset (the
dataset's train split, or 80% of each class drawn with the seed where it has no test split), the
head's accuracy on the test images, and a weights file every command takes with ``--weights``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semret.vision.datasets import dataset_info, load_dataset, split_per_class

Progress = Callable[[str, int, int], None]

#: The share of each class held out as test images when a dataset has no test split (as `semret eval`).
HELD_OUT = 0.2


@dataclass(frozen=True)
class FineTuneReport:
    """What fine-tuning made and how well its classifier head did."""

    backbone: str
    initial_weights: str
    train_images: int
    test_images: int
    train_accuracy: float
    test_accuracy: float | None
    cpu_seconds: float
    out: Path


def finetune_on_dataset(
    dataset: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    backbone: str = "resnet34",
    weights: str = "imagenet",
    image_size: int | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-4,
    train_limit: int | None = None,
    seed: int = 0,
    download: bool = False,
    progress: Progress | None = None,
) -> FineTuneReport:
    """Fine-tune ``backbone`` from ``weights`` (imagenet, none or a .pth file) on ``dataset``'s train
    images (``train_limit`` of them, seeded, when given), test its head on the test images."""
    from semret.vision.backbones import INPUT_SIZES
    from semret.vision.training import finetune_backbone  # torch

    info = dataset_info(dataset, data_dir)
    size = image_size or INPUT_SIZES.get(backbone, 224)
    if "train" in info.splits and "test" in info.splits:
        train = load_dataset(dataset, "train", data_dir, download, image_size=size)
        test = load_dataset(dataset, "test", data_dir, download, image_size=size)
    else:
        train, test = split_per_class(load_dataset(dataset, "all", data_dir, download, image_size=size), HELD_OUT, seed)
    if train_limit is not None and train_limit < len(train):
        rows = np.sort(np.random.default_rng(seed).choice(len(train), train_limit, replace=False))
        train = train.subset(rows)
    started = time.process_time()
    tuned = finetune_backbone(
        backbone, train.images, train.labels, len(info.class_names), out=out, initial_weights=weights,
        test_images=test.images, test_labels=test.labels, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, image_size=image_size, progress=progress,
    )  # fmt: skip
    return FineTuneReport(
        backbone, weights, len(train), len(test), tuned.train_accuracy, tuned.test_accuracy,
        time.process_time() - started, Path(out),
    )  # fmt: skip
