"""Collections in the store: import a dataset split, list them, and read a stored collection's
images back from where their pixels came from (the sources `collection import` records)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.errors import SemretError
from semret.sql.bulk import MergeCounts
from semret.sql.images_store import (
    CollectionImages,
    CollectionSummary,
    collection_images,
    has_collection,
    import_image_set,
    list_collections,
)
from semret.sql.migrations import require_current_schema
from semret.vision.datasets import FOLDER_DATASETS, ImageSet, dataset_info, load_dataset, read_image_sources

__all__ = [
    "CollectionSummary",
    "ImportReport",
    "check_target",
    "import_collection",
    "list_collections",
    "load_collection",
]

#: How many missing image ids an error shows.
_SHOWN = 3


@dataclass(frozen=True)
class ImportReport:
    """What importing a dataset split into a collection did."""

    collection: str
    dataset: str
    split: str
    images: int
    classes: int
    counts: MergeCounts

    @property
    def unchanged(self) -> int:
        return self.images - self.counts.inserted - self.counts.updated


def import_collection(
    engine: Engine,
    dataset: str,
    split: str | None = None,
    data_dir: str | Path | None = None,
    name: str | None = None,
    download: bool = False,
    image_size: int = 224,
) -> ImportReport:
    """Import a dataset split's images (ids, labels, splits, sources) into the collection ``name``
    (default ``DATASET-SPLIT``), created if needed. ``split`` defaults to test where the dataset has
    one, else all. Importing again changes nothing; another split of the same dataset is added."""
    if split is None:
        split = "test" if "test" in dataset_info(dataset, data_dir).splits else "all"
    require_current_schema(engine)
    images = load_dataset(dataset, split, data_dir, download=download, image_size=image_size)
    if not images.labelled:
        raise SemretError(
            f"{dataset}'s {split} split has no labels: a collection holds labelled images (the unlabelled "
            "images serve unsupervised training in Python, e.g. `semret.hashing.cimon.CimonHasher`)"
        )
    collection = name or f"{dataset}-{split}"
    counts = import_image_set(engine, collection, images)
    return ImportReport(collection, dataset, split, len(images), len(images.class_names), counts)


def check_target(
    engine: Engine, collection: str, image_ids: npt.ArrayLike, create: bool = False, add_images: bool = False
) -> None:
    """Refuse to write into a collection that does not exist (unless ``create``) or to add images
    to one that lacks them (unless ``add_images``): a typo must not create data."""
    if not has_collection(engine, collection):
        if create:
            return
        known = ", ".join(summary.name for summary in list_collections(engine)) or "none yet"
        raise SemretError(
            f"collection {collection!r} does not exist (collections: {known}); to create it, pass --create"
        )
    if add_images:
        return
    stored = collection_images(engine, collection).image_ids
    ids = np.asarray(image_ids, dtype=np.int64)
    new = ids[~np.isin(ids, stored)]
    if len(new):
        shown = ", ".join(str(int(i)) for i in new[:_SHOWN]) + (", ..." if len(new) > _SHOWN else "")
        are = "image is" if len(new) == 1 else "images are"
        raise SemretError(
            f"{len(new):,} {are} not in collection {collection!r} (ids {shown}); to add them, pass --add-images"
        )


def class_names_of(stored: CollectionImages) -> list[str]:
    """The classes of a stored collection: its dataset's, or (folder datasets, whose classes are
    their sub-folders) its labels, sorted as the folder loader sorts them."""
    if stored.dataset is not None and stored.dataset not in FOLDER_DATASETS:
        return list(dataset_info(stored.dataset).class_names)
    return sorted({label for label in stored.labels if label is not None})


def load_collection(
    engine: Engine, collection: str, split: str | None = None, image_size: int = 224, limit: int | None = None
) -> ImageSet:
    """A stored collection's images (all, or those of ``split``), read from their recorded sources:
    the IDX file or CIFAR batch and position, or (folder datasets) the image file, resized and
    cropped to ``image_size``. ``limit`` keeps the first images (by id).

    Only collections made by `import_collection` (``semret collection import``) know their sources.
    """
    stored = collection_images(engine, collection)
    if stored.dataset is None:
        raise SemretError(
            f"collection {collection!r} was not imported from a dataset, so semret does not know where its "
            "images' pixels are: import one with `semret collection import`, or give a file"
        )
    rows = np.arange(len(stored.image_ids))
    if split is not None:
        rows = np.array([i for i, s in enumerate(stored.splits) if s == split], dtype=np.int64)
        if not len(rows):
            present = ", ".join(sorted({s for s in stored.splits if s})) or "none"
            raise SemretError(f"collection {collection!r} has no {split} images (its splits: {present})")
    if limit is not None:
        rows = rows[:limit]
    if not len(rows):
        raise SemretError(f"collection {collection!r} has no images")
    sources = _sources(stored, rows)
    class_names = class_names_of(stored)
    splits = [stored.splits[i] for i in rows]
    split_name = split or (splits[0] if splits[0] is not None and len(set(splits)) == 1 else "all")
    return ImageSet(
        stored.dataset,
        split_name,
        stored.image_ids[rows],
        read_image_sources(stored.dataset, sources, image_size),
        _label_indices(stored, rows, class_names),
        class_names,
        sources,
        [s or split_name for s in splits],
    )


def _sources(stored: CollectionImages, rows: Sequence[int] | npt.NDArray[np.int64]) -> list[str]:
    sources = [stored.sources[int(i)] for i in rows]
    missing = [int(stored.image_ids[int(i)]) for i, s in zip(rows, sources, strict=True) if s is None]
    if missing:
        raise SemretError(
            f"{len(missing):,} images of collection {stored.name!r} have no recorded source (e.g. image "
            f"{missing[0]}): they were not imported with `semret collection import`"
        )
    return [s for s in sources if s is not None]


def _label_indices(
    stored: CollectionImages, rows: Sequence[int] | npt.NDArray[np.int64], class_names: list[str]
) -> npt.NDArray[np.int64]:
    position = {name: i for i, name in enumerate(class_names)}
    labels = []
    for i in rows:
        label = stored.labels[int(i)]
        if label not in position:
            raise SemretError(
                f"image {int(stored.image_ids[int(i)])} of collection {stored.name!r} has the label {label!r}, "
                f"not a class of {stored.dataset}"
            )
        labels.append(position[label])
    return np.array(labels, dtype=np.int64)
