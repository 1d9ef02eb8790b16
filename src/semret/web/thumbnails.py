"""PNG thumbnails of a collection's images, made from the store's recorded sources
(`semret.app.pixels`) and kept in memory (least recently used dropped first), so that a page
shown twice reads and encodes nothing the second time."""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from semret.app.pixels import CollectionPixels
from semret.errors import SemretError

#: Thumbnail sides a request may ask for, in pixels.
MIN_SIDE, MAX_SIDE, DEFAULT_SIDE = 16, 256, 96


def png_bytes(pixels: npt.NDArray[np.uint8], side: int | None = None) -> bytes:
    """``pixels`` as a PNG, its longer side scaled to ``side`` (nearest neighbour when enlarging,
    so that small images stay sharp)."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(pixels))
    if side is not None:
        scale = side / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        method = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
        picture = picture.resize(size, method)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(pixels: npt.NDArray[np.uint8], side: int | None = None) -> str:
    """``pixels`` as a ``data:image/png`` URL (an uploaded query shown back without storing it)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels, side)).decode("ascii")


class Thumbnails:
    """A collection image's PNG by (collection, image id, side), cached."""

    def __init__(self, pixels: CollectionPixels, cached: int = 8192) -> None:
        self.pixels = pixels
        self.cached = cached
        self._cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, collection: str, image_id: int, side: int = DEFAULT_SIDE) -> bytes:
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise SemretError(f"size must be from {MIN_SIDE} to {MAX_SIDE} pixels, got {side}")
        key = (collection, image_id, side)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                return self._cache[key]
        picture = png_bytes(self.pixels.read(collection, [image_id])[0], side)
        with self._lock:
            self.misses += 1
            self._cache[key] = picture
            while len(self._cache) > self.cached:
                self._cache.popitem(last=False)
        return picture
