"""CIMON end to end (`semret.hashing.cimon`): augmented views of the training images through the
backbone (kept in the feature cache), the head trained without labels, the checkpoint written with
the backbone it expects. ``semret hash train --method cimon`` and ``semret eval``'s ``cimon`` use
it; the codes then go through the store like the semantic hash's (`semret.app.hashing`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from semret.core.validation import check_count
from semret.errors import SemretError

if TYPE_CHECKING:  # torch is slow to import
    from semret.hashing.cimon import CimonHasher
    from semret.vision.backbones import Backbone

Progress = Callable[[str, int, int], None]

#: Augmented views per training image unless told (docs/sources/cimon.md recommends 4 to 8; each
#: costs one pass of the training images through the backbone).
DEFAULT_VIEWS = 4


@dataclass(frozen=True)
class ViewSource:
    """Names the images whose views are cached: their dataset, split and content fingerprint."""

    dataset: str
    split: str
    fingerprint: str


def training_rows(n: int, graph_size: int, seed: int) -> npt.NDArray[np.int64]:
    """The positions of CIMON's training images: ``graph_size`` of n drawn with ``seed``, in order
    (all when there are no more); the draw `CimonHasher.fit` makes on the same n."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(graph_size, n), replace=False)).astype(np.int64)


def view_features(
    backbone: Backbone,
    images: npt.NDArray[np.uint8],
    rows: npt.NDArray[np.int64],
    n_views: int,
    seed: int,
    *,
    source: ViewSource | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> npt.NDArray[np.float32]:
    """Features (len(rows), n_views, d) of ``n_views`` augmented views (`semret.vision.augment`) of
    the images at ``rows``. With a ``source`` they are kept in the feature cache under a key naming
    the images, the rows, the views, the seed and the augmentation, so a second run computes nothing."""
    from semret.vision.augment import AUGMENTATION_ID, augmented_views
    from semret.vision.features import FeatureCache, FeatureKey, default_cache_dir, extract_features, weights_id

    n_views = check_count("n_views", n_views, 2)
    picked = np.asarray(rows, dtype=np.int64)
    dim = backbone.feature_dim
    cache = key = None
    if source is not None:
        digest = hashlib.sha256(f"{source.fingerprint}|{AUGMENTATION_ID}|{n_views}|{seed}|".encode())
        digest.update(np.ascontiguousarray(picked, dtype="<i8").tobytes())
        split = f"{source.split}-views{n_views}"
        key = FeatureKey(
            source.dataset, split, digest.hexdigest()[:16], backbone.name, weights_id(backbone), backbone.input_size
        )
        cache = FeatureCache(cache_dir if cache_dir is not None else default_cache_dir())
        found = cache.cached_features(key, len(picked) * n_views, dim)
        if found is not None:
            return found.reshape(len(picked), n_views, dim)
    views = augmented_views(images[picked], n_views, seed, progress, positions=picked)
    flat = views.reshape(len(picked) * n_views, *views.shape[2:])
    if cache is not None and key is not None:
        features = cache.features(key, flat, backbone, batch_size, _renamed(progress, "view features"))
    else:
        features = extract_features(backbone, flat, batch_size, _renamed(progress, "view features"))
    return np.asarray(features, dtype=np.float32).reshape(len(picked), n_views, dim)


def _renamed(progress: Progress | None, stage: str) -> Progress | None:
    if progress is None:
        return None
    report = progress
    return lambda _stage, done, total: report(stage, done, total)


@dataclass(frozen=True)
class CimonTraining:
    """A trained CIMON model, written to ``out``, and what its training took."""

    hasher: CimonHasher
    images: int
    n_views: int
    final_loss: float
    positive_rate: float
    view_seconds: float
    train_seconds: float
    out: Path


def train_cimon(
    backbone: Backbone,
    images: npt.NDArray[np.uint8],
    features: npt.NDArray[np.float32],
    out: str | Path,
    *,
    n_views: int = DEFAULT_VIEWS,
    source: ViewSource | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> CimonTraining:
    """Train CIMON on ``images`` (their clean ``features`` through ``backbone`` given) without
    labels: draw the training images (``graph_size`` of them), make ``n_views`` augmented views of
    each through the backbone, fit, and write the checkpoint (with the backbone) to ``out``.
    ``params`` are `CimonHasher`'s."""
    from semret.hashing.cimon import CimonHasher  # torch
    from semret.vision.features import weights_id

    hasher = CimonHasher(**params)  # its parameters checked before any work
    n_views = check_count("n_views", n_views, 2)
    if len(images) != len(features):
        raise SemretError(f"{len(images)} images but {len(features)} feature vectors")
    rows = training_rows(len(images), hasher.graph_size, hasher.seed)
    started = time.perf_counter()
    views = view_features(
        backbone, images, rows, n_views, hasher.seed, source=source, cache_dir=cache_dir, progress=progress
    )
    viewed = time.perf_counter()
    hasher.fit(features[rows], views, progress=progress)
    trained = time.perf_counter()
    feature_source = {
        "backbone": backbone.name,
        "weights": weights_id(backbone),
        "image_size": backbone.input_size,
        "views": n_views,
    }
    hasher.save(out, feature_source)
    assert hasher.graph_ is not None
    return CimonTraining(
        hasher,
        len(rows),
        n_views,
        hasher.loss_history_[-1],
        hasher.graph_.positive_rate,
        viewed - started,
        trained - viewed,
        Path(out),
    )


def check_feature_source(hasher: CimonHasher, backbone: str, weights: str, image_size: int, checkpoint: str) -> None:
    """Features for a CIMON model must come through the backbone it was trained on: an error naming
    what differs."""
    source = hasher.feature_source_ or {}
    wanted = {"backbone": backbone, "weights": weights, "image_size": image_size}
    differing = [f"{name} {source[name]!r} there, {value!r} here" for name, value in wanted.items()
                 if name in source and source[name] != value]  # fmt: skip
    if differing:
        raise SemretError(f"{checkpoint}: the CIMON model was trained on other features ({'; '.join(differing)})")


def train_cimon_on_collection(
    engine: Any,
    collection: str,
    out: str | Path,
    *,
    backbone: str,
    weights: str | None = None,
    image_size: int | None = None,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    n_views: int = DEFAULT_VIEWS,
    **params: Any,
) -> CimonTraining:
    """`train_cimon` on a stored collection's images (all, or ``split``'s; labels ignored), their
    clean features from the feature cache (`semret.app.features.collection_features`)."""
    from semret.app.collections import load_collection
    from semret.app.features import collection_features

    found = collection_features(
        engine, collection, backbone, weights, image_size, split=split, cache_dir=cache_dir, progress=progress
    )
    images = load_collection(engine, collection, split, image_size=found.network.input_size)
    source = ViewSource(images.dataset, images.split, images.fingerprint())
    return train_cimon(
        found.network, images.images, found.arrays.data, out, n_views=n_views, source=source,
        cache_dir=found.cache_dir, progress=progress, **params,
    )  # fmt: skip


def train_cimon_on_images(
    images: npt.NDArray[np.uint8],
    out: str | Path,
    *,
    backbone: str,
    weights: str | None = None,
    image_size: int | None = None,
    progress: Progress | None = None,
    n_views: int = DEFAULT_VIEWS,
    **params: Any,
) -> CimonTraining:
    """`train_cimon` on images given as an array (a file's), through ``backbone``; nothing cached."""
    from semret.vision.backbones import make_backbone
    from semret.vision.features import extract_features

    network = make_backbone(backbone, weights, image_size, seed=0)
    features = extract_features(network, images, progress=progress)
    return train_cimon(network, images, features, out, n_views=n_views, progress=progress, **params)


def train_cimon_on_dataset(
    dataset: str,
    split: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    backbone: str,
    weights: str | None = None,
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    n_views: int = DEFAULT_VIEWS,
    **params: Any,
) -> CimonTraining:
    """`train_cimon` on a dataset split read from its files, labelled or not (STL-10's 100,000
    ``unlabeled`` images, on which the paper trains): only the ``graph_size`` images drawn are
    read into memory and encoded; their clean features and views are kept in the feature cache."""
    from semret.hashing.cimon import CimonHasher
    from semret.vision.backbones import INPUT_SIZES, make_backbone
    from semret.vision.datasets import load_dataset
    from semret.vision.features import FeatureCache, FeatureKey, default_cache_dir

    hasher = CimonHasher(**params)  # its parameters checked before anything is read
    network = make_backbone(backbone, weights, image_size, seed=0)
    everything = load_dataset(dataset, split, data_dir, image_size=image_size or INPUT_SIZES.get(backbone, 224))
    drawn = everything.subset(training_rows(len(everything), hasher.graph_size, hasher.seed))
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = FeatureKey.for_backbone(drawn.dataset, drawn.split, drawn.fingerprint(), network)
    features = FeatureCache(root).features(key, drawn.images, network, progress=progress)
    source = ViewSource(drawn.dataset, drawn.split, drawn.fingerprint())
    return train_cimon(
        network, drawn.images, np.asarray(features, dtype=np.float32), out, n_views=n_views, source=source,
        cache_dir=root, progress=progress, **params,
    )  # fmt: skip
