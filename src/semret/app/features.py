"""Features of a stored collection's images through a backbone, kept in the on-disk feature cache
(`semret.vision.features.FeatureCache`): computed once, read back on every later call.

The cache key names the dataset, the split, the images' content, the backbone, its weights and its
input size, so a collection's features are the very features `semret eval` and `semret demo`
computed for the same images (and the other way round).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from semret.app.collections import load_collection
from semret.vision.arrays import LabelledArrays

if TYPE_CHECKING:  # torch is slow to import: the backbones are imported where features are made
    from semret.vision.backbones import Backbone

#: progress(stage, done, total), as everywhere in semret; here the stage is "features".
Progress = Callable[[str, int, int], None]

DEFAULT_BACKBONE = "efficientnet-lite0"


@dataclass(frozen=True)
class CollectionFeatures:
    """A collection's features (``arrays``, kind "features", in image id order), each image's split,
    and where they came from."""

    collection: str
    arrays: LabelledArrays
    splits: list[str]
    backbone: str
    weights: str
    image_size: int
    cache_dir: Path
    #: Whether every feature was in the cache already (nothing was computed).
    cached: bool
    #: The backbone the features came through.
    network: Backbone
    #: The engine that computed what was missing: "onnx" (ONNX Runtime) or "torch".
    engine: str = "torch"
    #: Where the ONNX network is, and its max |ORT - torch| on the probe batch, when this call ran it.
    onnx_file: Path | None = None
    onnx_max_abs_diff: float | None = None


def collection_features(
    engine: Engine,
    collection: str,
    backbone: str | Backbone = DEFAULT_BACKBONE,
    weights: str | None = None,
    image_size: int | None = None,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    feature_engine: str = "auto",
) -> CollectionFeatures:
    """Features of a collection's images (all, or those of ``split``) through ``backbone`` (a name
    for `semret.vision.backbones.make_backbone`, with ``weights`` imagenet, none or a .pth file and
    ``image_size`` its input size; or a `Backbone` made already), from the feature cache
    (``cache_dir``, default `semret.vision.features.default_cache_dir`), computing only what is not
    there yet. `CollectionFeatures.network` is the backbone, to use again. ``feature_engine``
    computes the missing features: "auto" (ONNX Runtime for the pretrained backbones, torch for small-cnn),
    "onnx" or "torch" (`semret.vision.features.extract_features`).

    Random weights (``none``) are drawn from seed 0, so that the cache's ``none`` is one draw.
    """
    from semret.vision.backbones import INPUT_SIZES, make_backbone  # torch: only when features are made
    from semret.vision.features import FeatureCache, FeatureKey, default_cache_dir, weights_id
    from semret.vision.onnx_runtime import check_engine, loaded_session, resolve_engine

    check_engine(feature_engine)
    if isinstance(backbone, str):
        # the images first: a wrong collection is reported before a network is built
        size = image_size or INPUT_SIZES.get(backbone, 224)
        images = load_collection(engine, collection, split, image_size=size)
        network = make_backbone(backbone, weights, image_size, seed=0)
    else:
        network = backbone
        images = load_collection(engine, collection, split, image_size=network.input_size)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = FeatureCache(root)
    key = FeatureKey.for_backbone(images.dataset, images.split, images.fingerprint(), network)
    cached = cache.is_complete(key)
    features = cache.features(key, images.images, network, batch_size, progress, engine=feature_engine)
    chosen = resolve_engine(feature_engine, network)
    ran = loaded_session(network, root) if chosen == "onnx" and not cached else None  # the session just used
    arrays = LabelledArrays(
        images.image_ids, np.asarray(features, dtype=np.float32), "features", images.labels, images.class_names
    )
    return CollectionFeatures(
        collection,
        arrays,
        list(images.image_splits),
        network.name,
        weights_id(network),
        network.input_size,
        root,
        cached,
        network,
        chosen,
        ran.path if ran else None,
        ran.max_abs_diff if ran else None,
    )
