"""Random augmented views of images, for CIMON's consistency learning (`semret.hashing.cimon`).

The pipeline is the one CIMON's public code applies to both views of every training image
(``ileumbbb/CIMON``, ``data/transform.train_aug_transform``; docs/sources/cimon.md section 3.4),
the SimCLR augmentations: a random resized crop (scale 0.2 to 1) back to the image's own size,
colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with probability 0.8, grey with
probability 0.2, a Gaussian blur (sigma 0.1 to 2) with probability 0.5, and a horizontal flip with
probability 0.5. The views stay uint8 images of the input's size: the backbone's own
preprocessing (`semret.vision.backbones.Backbone.preprocess`) then resizes and normalises them,
as it does the clean images. Grey images (n, h, w) stay grey: saturation and hue do nothing to
one channel. torchvision's transforms (v2) do the work; each image's views are drawn from a seed
made of ``seed`` and the image's position, so a view never depends on which other images are
augmented with it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from semret.core.validation import check_count, check_seed
from semret.errors import SemretError

Progress = Callable[[str, int, int], None]

#: Names the pipeline in cache keys: change it when the pipeline changes.
AUGMENTATION_ID = "simclr-cimon-v1"
#: The blur's kernel: about a tenth of the image's side, odd (SimCLR's choice), at least 3 pixels.
BLUR_SHARE = 0.1


def _pipeline(height: int, width: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms import v2

    kernel = max(3, int(BLUR_SHARE * min(height, width)) // 2 * 2 + 1)
    return v2.Compose(
        [
            v2.RandomResizedCrop((height, width), scale=(0.2, 1.0), antialias=True),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
            v2.RandomHorizontalFlip(),
        ]
    )


def augmented_views(
    images: npt.NDArray[np.uint8],
    n_views: int,
    seed: int = 0,
    progress: Progress | None = None,
    positions: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint8]:
    """``n_views`` augmented views of each uint8 image, (n, h, w) or (n, h, w, 3) in, (n, n_views,
    h, w[, 3]) out; image i's views are drawn from ``seed`` and its position: ``positions[i]``
    (its row in the whole set the images were picked from), else i (module docstring).
    progress("augmenting", done, n)."""
    array = np.asarray(images)
    if array.dtype != np.uint8 or not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
        raise SemretError(f"images to augment must be uint8 (n, h, w) or (n, h, w, 3), got {array.dtype} {array.shape}")
    n_views = check_count("n_views", n_views)
    seed = check_seed(seed)
    places = np.arange(len(array)) if positions is None else np.asarray(positions, dtype=np.int64).reshape(-1)
    if len(places) != len(array):
        raise SemretError(f"{len(array)} images to augment but {len(places)} positions")
    grey = array.ndim == 3
    height, width = array.shape[1], array.shape[2]
    pipeline = _pipeline(height, width)
    out = np.empty((len(array), n_views, *array.shape[1:]), dtype=np.uint8)
    with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
        for i in range(len(array)):
            torch.random.default_generator.manual_seed((seed * 1_000_003 + int(places[i])) % 2**63)
            image = torch.from_numpy(np.ascontiguousarray(array[i]))
            chw = image.unsqueeze(0) if grey else image.permute(2, 0, 1)
            for view in range(n_views):
                augmented = pipeline(chw)
                out[i, view] = (augmented[0] if grey else augmented.permute(1, 2, 0)).numpy()
            if progress and (i % 256 == 255 or i == len(array) - 1):
                progress("augmenting", i + 1, len(array))
    return out
