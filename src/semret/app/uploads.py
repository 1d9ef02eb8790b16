"""An image a user uploads as a query: checked (size, type, dimensions) and made to look like the
collection's own images (grey or colour, their size), so that it goes through the same backbone
and model as they did."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

#: The largest upload accepted, in bytes, and the largest side in pixels.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_SIDE = 4096
#: Image formats accepted (Pillow's names).
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")


class UploadError(SemretError):
    """An upload that is not an image semret takes; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadedImage:
    """The decoded upload, resized to the collection's images (``pixels``), and its file name."""

    name: str
    pixels: npt.NDArray[np.uint8]


def decode_upload(data: bytes, name: str, like: npt.NDArray[np.uint8], size: int | None = None) -> UploadedImage:
    """``data`` as an image shaped like ``like`` (one of the collection's images: (h, w) grey or
    (h, w, 3) RGB): the shorter side resized to fit, then the centre cropped. Too large, empty,
    not an image or of another format: an `UploadError` naming the file. ``size`` is the file's
    whole size where the caller read only the start of a large one."""
    from PIL import Image, UnidentifiedImageError

    shown = name or "the upload"
    if not data:
        raise UploadError(f"{shown}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{shown}: {max(size or 0, len(data)):,} bytes is over the limit of {MAX_UPLOAD_BYTES:,} bytes (5 MiB)",
            status=413,
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format not in UPLOAD_FORMATS:
                raise UploadError(
                    f"{shown}: {opened.format} images are not taken; upload one of {', '.join(UPLOAD_FORMATS)}",
                    status=415,
                )
            width, height = opened.size
            if max(width, height) > MAX_UPLOAD_SIDE:
                raise UploadError(
                    f"{shown}: {width} x {height} pixels is over the limit of {MAX_UPLOAD_SIDE} per side", status=413
                )
            picture = opened.convert("L" if like.ndim == 2 else "RGB")
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UploadError(f"{shown}: not an image (upload a PNG or JPEG file)", status=415) from None
    except (OSError, ValueError) as exc:
        raise UploadError(f"{shown}: cannot read the image ({exc})", status=415) from None
    target_h, target_w = like.shape[:2]
    scale = max(target_w / picture.width, target_h / picture.height)
    resized = picture.resize(
        (max(target_w, round(picture.width * scale)), max(target_h, round(picture.height * scale))),
        Image.Resampling.BILINEAR,
    )
    left, top = (resized.width - target_w) // 2, (resized.height - target_h) // 2
    cropped = resized.crop((left, top, left + target_w, top + target_h))
    return UploadedImage(shown, np.array(cropped, dtype=np.uint8))  # a writable copy, for torch
