"""A stored collection's pixels, read only from the sources the store records for its images (an
IDX file and position, a CIFAR batch and position, a folder's image file): the web app's
thumbnails, the contact sheets of ``semret query --show`` and of evaluation reports.

No caller names a file: a caller names a collection and image ids, and the files read are those
`semret collection import` (or `semret eval`) recorded. The dataset files read stay in a small
cache (a few files, least recently used first out), so a page of thumbnails reads its file once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.core.sorted_ids import position_of
from semret.errors import NotFoundError, SemretError
from semret.sql.images_store import CollectionImages, collection_images
from semret.vision.datasets import read_image_sources

#: Side of the pixels read from an image file (folder datasets); dataset files keep their own size.
FILE_IMAGE_SIZE = 160


class _LruFiles(MutableMapping[Path, npt.NDArray[np.uint8]]):
    """At most ``size`` decoded dataset files, the least recently used dropped first; safe to share
    between threads (each lookup and insert under a lock; files are read outside it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._files: OrderedDict[Path, npt.NDArray[np.uint8]] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: Path) -> npt.NDArray[np.uint8]:
        with self._lock:
            self._files.move_to_end(key)
            return self._files[key]

    def __setitem__(self, key: Path, value: npt.NDArray[np.uint8]) -> None:
        with self._lock:
            self._files[key] = value
            self._files.move_to_end(key)
            while len(self._files) > self.size:
                self._files.popitem(last=False)

    def __delitem__(self, key: Path) -> None:
        with self._lock:
            del self._files[key]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


class CollectionPixels:
    """Reads the pixels of a store's images by collection and image id (module docstring)."""

    def __init__(self, engine: Engine, cached_files: int = 4) -> None:
        self.engine = engine
        self._files = _LruFiles(cached_files)
        self._collections: dict[str, CollectionImages] = {}
        self._lock = threading.Lock()

    def collection(self, name: str) -> CollectionImages:
        """A collection's ids, labels and sources (read from the store once)."""
        with self._lock:
            if name not in self._collections:
                self._collections[name] = collection_images(self.engine, name)
            return self._collections[name]

    def read(self, collection: str, image_ids: Sequence[int]) -> list[npt.NDArray[np.uint8]]:
        """Each image's pixels, (h, w) grey or (h, w, 3) RGB uint8, in the order of ``image_ids``;
        an id not in the collection, or an image without a recorded source, is an error."""
        stored = self.collection(collection)
        if stored.dataset is None:
            raise SemretError(
                f"collection {collection!r} was not imported from a dataset: semret does not know where its pixels are"
            )
        sources = []
        for image_id in image_ids:
            position = position_of(stored.image_ids, image_id)
            if position is None:
                raise NotFoundError(f"image {image_id} is not in collection {collection!r}")
            source = stored.sources[position]
            if source is None:
                raise SemretError(f"image {image_id} of collection {collection!r} has no recorded source")
            sources.append(source)
        if not sources:
            return []
        pixels = read_image_sources(stored.dataset, sources, FILE_IMAGE_SIZE, self._files)
        return [np.asarray(image) for image in pixels]

    def label(self, collection: str, image_id: int) -> str | None:
        """The stored label of an image of the collection."""
        stored = self.collection(collection)
        position = position_of(stored.image_ids, image_id)
        if position is None:
            raise NotFoundError(f"image {image_id} is not in collection {collection!r}")
        return stored.labels[position]
