"""Image features through a frozen backbone, and a disk cache that makes them once per dataset.

Features of a large image set take long to compute (minutes to hours on a CPU), and every
evaluation of a retrieval method on the same images needs the same ones. `FeatureCache` keeps
them on disk under ``<root>/features/<key>/``, where the `FeatureKey` names the data set, the split,
the images' content fingerprint, the backbone, its weights and the input size:

- ``metadata.json`` is written first (the key, the number of images, the feature size, the chunk size);
- features are computed ``chunk_size`` images at a time and each chunk is saved as ``part-NNNNN.npy``
  (atomically: a temporary file, then a rename), so an interrupted run resumes at the first missing part;
- once every part is there they are assembled into one ``features.npy`` and the parts removed: a
  later run computes nothing.

A damaged part is computed again (with a `FeatureCacheWarning`); metadata that do not match the
request (another number of images, feature size or chunk size) is an error, never silently mixed.
One process at a time should fill a given key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import platformdirs
import torch

from semret import __version__
from semret.errors import SemretError
from semret.vision.backbones import Backbone, weights_id
from semret.vision.onnx_runtime import onnx_features, resolve_engine

__all__ = [
    "FeatureCache",
    "FeatureCacheWarning",
    "FeatureKey",
    "Progress",
    "default_cache_dir",
    "extract_features",
    "weights_id",  # re-exported: keys are made with it
]

#: progress(stage, done, total), as in `semret.hashing.hasher`; here the stage is "features".
Progress = Callable[[str, int, int], None]

CACHE_FORMAT = "semret.features"
CACHE_VERSION = 1
METADATA_FILE = "metadata.json"
FEATURES_FILE = "features.npy"
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
_MAX_NAME = 180  # well below the usual 255-byte limit of a file name


class FeatureCacheWarning(UserWarning):
    """A cached file could not be used and its features are computed again."""


def extract_features(
    backbone: Backbone,
    images: npt.NDArray[np.uint8],
    batch_size: int = 64,
    progress: Progress | None = None,
    *,
    engine: str = "auto",
    cache_dir: str | Path | None = None,
) -> npt.NDArray[np.float32]:
    """Features (n, feature_dim) of uint8 images through ``backbone``: eval mode, no gradients, in batches.

    ``engine`` "onnx" runs the network on ONNX Runtime (`semret.vision.onnx_runtime`: exported once
    into ``<cache_dir>/onnx/``, default `default_cache_dir`), "torch" on torch, "auto" (the default)
    ONNX Runtime for the pretrained backbones (`ONNX_BACKBONES`) and torch for small-cnn. The
    preprocessing is the backbone's own (torch) either way; on ONNX Runtime the next batch is
    preprocessed while one runs. The module's train/eval mode is restored afterwards.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SemretError(f"batch size must be a positive integer, got {batch_size!r}")
    array = _checked_images(images)
    chosen = resolve_engine(engine, backbone)
    result = np.empty((len(array), backbone.feature_dim), dtype=np.float32)
    if not len(array):
        return result
    module = backbone.module
    was_training = module.training
    module.eval()
    try:
        network = None
        if chosen == "onnx":
            network = onnx_features(backbone, Path(cache_dir) if cache_dir is not None else default_cache_dir())
        with torch.no_grad():
            for start, stop, inputs in _preprocessed(backbone, array, batch_size, ahead=network is not None):
                batch = network.run(inputs.numpy()) if network is not None else module(inputs).numpy()
                if tuple(batch.shape) != (stop - start, backbone.feature_dim):
                    raise SemretError(
                        f"backbone {backbone.name} gave features of shape {tuple(batch.shape)}, "
                        f"expected {(stop - start, backbone.feature_dim)}"
                    )
                result[start:stop] = batch
                if progress:
                    progress("features", stop, len(array))
    finally:
        module.train(was_training)
    return result


def _preprocessed(
    backbone: Backbone, images: npt.NDArray[np.uint8], batch_size: int, *, ahead: bool
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, stop, preprocessed batch) for each batch of ``images``. With ``ahead``, a worker
    thread preprocesses the next batch while the caller runs this one (ONNX Runtime releases the
    GIL while it runs), so that the preprocessing costs no time of its own."""
    spans = [(start, min(start + batch_size, len(images))) for start in range(0, len(images), batch_size)]
    if not ahead:
        for start, stop in spans:
            yield start, stop, backbone.preprocess(images[start:stop])
        return
    with ThreadPoolExecutor(1, thread_name_prefix="semret-preprocess") as pool:
        upcoming = pool.submit(backbone.preprocess, images[spans[0][0] : spans[0][1]])
        for index, (start, stop) in enumerate(spans):
            batch = upcoming.result()
            if index + 1 < len(spans):
                following = spans[index + 1]
                upcoming = pool.submit(backbone.preprocess, images[following[0] : following[1]])
            yield start, stop, batch


@dataclass(frozen=True)
class FeatureKey:
    """What a set of cached features depends on; ``content`` fingerprints the images (hex string) and
    ``weights`` is `semret.vision.backbones.weights_id` of the backbone."""

    dataset: str
    split: str
    content: str
    backbone: str
    weights: str
    image_size: int

    def __post_init__(self) -> None:
        for name in ("dataset", "split", "content", "backbone", "weights"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SemretError(f"feature key: {name} must be a non-empty string, got {value!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            raise SemretError(f"feature key: image_size must be a positive integer, got {self.image_size!r}")

    @classmethod
    def for_backbone(cls, dataset: str, split: str, content: str, backbone: Backbone) -> FeatureKey:
        """The key of ``backbone``'s features of a data set's split (name, weights and input size from it)."""
        return cls(dataset, split, content, backbone.name, weights_id(backbone), backbone.input_size)

    def directory_name(self) -> str:
        """A readable, filesystem-safe name, e.g. ``fashion-mnist_test_<content>_efficientnet-lite0_imagenet_112``."""
        parts = (self.dataset, self.split, self.content, self.backbone, self.weights, str(self.image_size))
        name = "_".join(_UNSAFE.sub("-", part).strip("-.") or "-" for part in parts)
        if len(name) > _MAX_NAME:  # keep it unique: the full name's hash replaces the tail
            name = f"{name[: _MAX_NAME - 17]}_{hashlib.sha256(name.encode()).hexdigest()[:16]}"
        return name


def default_cache_dir() -> Path:
    """``$SEMRET_CACHE_DIR`` if set, else the user cache directory of semret (platformdirs)."""
    configured = os.environ.get("SEMRET_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("semret"))


class FeatureCache:
    """Backbone features on disk, computed in chunks that survive an interrupted run (see the module doc)."""

    def __init__(self, root: str | Path | None = None, chunk_size: int = 2048) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise SemretError(f"chunk size must be a positive integer, got {chunk_size!r}")
        self.root = Path(root) if root is not None else default_cache_dir()
        self.chunk_size = chunk_size

    def directory(self, key: FeatureKey) -> Path:
        """Where the features of ``key`` are kept."""
        return self.root / "features" / key.directory_name()

    def is_complete(self, key: FeatureKey) -> bool:
        """Whether every feature of ``key`` is cached (a `features` call would compute nothing)."""
        directory = self.directory(key)
        return (directory / METADATA_FILE).is_file() and (directory / FEATURES_FILE).is_file()

    def cached_features(self, key: FeatureKey, n_images: int, feature_dim: int) -> npt.NDArray[np.float32] | None:
        """The features of ``key`` when all ``n_images`` are cached with ``feature_dim`` values each,
        else None: for callers that would have to make the images first (augmented views)."""
        directory = self.directory(key)
        stored = _read_metadata(directory)
        if stored is None or stored.get("n_images") != n_images or stored.get("feature_dim") != feature_dim:
            return None
        if stored.get("key") != asdict(key):
            return None
        return self._complete_features(directory, n_images, feature_dim)

    def clear(self, key: FeatureKey) -> None:
        """Delete everything cached for ``key`` (nothing happens if there is nothing)."""
        directory = self.directory(key)
        if directory.exists():
            shutil.rmtree(directory)

    def features(
        self,
        key: FeatureKey,
        images: npt.NDArray[np.uint8],
        backbone: Backbone,
        batch_size: int = 64,
        progress: Progress | None = None,
        *,
        engine: str = "auto",
    ) -> npt.NDArray[np.float32]:
        """The features (n, feature_dim) of ``images``: read from the cache, computing only what is missing.

        ``key`` must describe ``backbone`` (name, weights, input size) and ``images`` (its fingerprint).
        What is missing is computed by ``engine`` (`extract_features`; ONNX files under ``<root>/onnx/``).
        The engine is not part of the key: both give the same network's features (to ~1e-5).
        """
        resolve_engine(engine, backbone)  # a wrong engine is reported before anything is read
        _check_key_matches(key, backbone)
        array = _checked_images(images)
        n, dim = len(array), backbone.feature_dim
        directory = self.directory(key)
        wanted = {
            "format": CACHE_FORMAT,
            "format_version": CACHE_VERSION,
            "semret_version": __version__,
            "key": asdict(key),
            "n_images": n,
            "feature_dim": dim,
            "chunk_size": self.chunk_size,
            "dtype": "float32",
        }
        stored = _read_metadata(directory)
        if stored is not None:
            _check_metadata(directory, stored, wanted)
            complete = self._complete_features(directory, n, dim)
            if complete is not None:
                for part in directory.glob("part-*.npy"):  # left by a run stopped just after assembling
                    part.unlink(missing_ok=True)
                if progress and n:
                    progress("features", n, n)
                return complete
            if stored["chunk_size"] != self.chunk_size:
                if any(directory.glob("part-*.npy")):
                    raise SemretError(
                        f"{directory}: the cached parts hold {stored['chunk_size']} images each, this cache "
                        f"uses chunks of {self.chunk_size}: use chunk_size={stored['chunk_size']}, or delete "
                        "that directory (FeatureCache.clear(key)) to start again"
                    )
                stored = None  # nothing computed yet: start again with this chunk size
        if stored is None:
            directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(directory / METADATA_FILE, (json.dumps(wanted, indent=2) + "\n").encode())
        return self._fill(directory, array, backbone, batch_size, progress, engine)

    # --- internals ---------------------------------------------------------------------------

    def _fill(
        self,
        directory: Path,
        images: npt.NDArray[np.uint8],
        backbone: Backbone,
        batch_size: int,
        progress: Progress | None,
        engine: str,
    ) -> npt.NDArray[np.float32]:
        """Read or compute every part, then assemble them into the single features file."""
        n, dim = len(images), backbone.feature_dim
        parts, chunks = [], []
        for index, start in enumerate(range(0, n, self.chunk_size)):
            stop = min(start + self.chunk_size, n)
            part = directory / f"part-{index:05d}.npy"
            values = _read_array(part, (stop - start, dim), "part")
            if values is None:
                inner = _offset_progress(progress, start, stop, n)
                values = extract_features(
                    backbone, images[start:stop], batch_size, inner, engine=engine, cache_dir=self.root
                )
                _save_npy(part, values)
            if progress:  # once the part is on disk
                progress("features", stop, n)
            parts.append(part)
            chunks.append(values)
        result = np.concatenate(chunks) if chunks else np.empty((0, dim), dtype=np.float32)
        _save_npy(directory / FEATURES_FILE, result)
        for part in parts:  # the single file now holds them
            part.unlink(missing_ok=True)
        return result

    def _complete_features(self, directory: Path, n: int, dim: int) -> npt.NDArray[np.float32] | None:
        """The assembled features, or None when they are not there (or damaged, then removed)."""
        file = directory / FEATURES_FILE
        values = _read_array(file, (n, dim), "features file")
        if values is None and file.exists():
            file.unlink()
        return values


def _offset_progress(progress: Progress | None, start: int, stop: int, total: int) -> Progress | None:
    """Progress of the batches of the chunk ``start:stop`` as progress over all ``total`` images; its
    end is left out, to be reported when the chunk is saved."""
    if progress is None:
        return None
    report = progress

    def inner(stage: str, done: int, _: int) -> None:
        if start + done < stop:
            report(stage, start + done, total)

    return inner


def _checked_images(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    array = np.asarray(images)
    if array.dtype != np.uint8 or not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
        raise SemretError(f"images must be uint8 (n, h, w) or (n, h, w, 3), got {array.dtype} {array.shape}")
    return array


def _check_key_matches(key: FeatureKey, backbone: Backbone) -> None:
    """The key must describe the backbone, or the cache would file features under the wrong name."""
    actual = {"backbone": backbone.name, "image_size": backbone.input_size, "weights": weights_id(backbone)}
    for field, value in actual.items():
        if getattr(key, field) != value:
            raise SemretError(
                f"the feature key's {field} is {getattr(key, field)!r} but the backbone's is {value!r} "
                "(make the key with FeatureKey.for_backbone)"
            )


def _read_metadata(directory: Path) -> dict[str, Any] | None:
    file = directory / METADATA_FILE
    if not file.exists():
        return None
    try:
        stored = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SemretError(
            f"{file}: unreadable feature cache metadata ({exc}); delete {directory} (or FeatureCache.clear(key))"
        ) from exc
    if not isinstance(stored, dict) or stored.get("format") != CACHE_FORMAT:
        raise SemretError(f"{file}: not semret feature cache metadata; delete {directory} (or FeatureCache.clear(key))")
    return stored


def _check_metadata(directory: Path, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Stored metadata must describe the same features (the chunk size is checked by the caller)."""
    if not isinstance(stored.get("format_version"), int) or stored["format_version"] > CACHE_VERSION:
        raise SemretError(
            f"{directory}: feature cache format {stored.get('format_version')!r} is not one this semret reads"
        )
    differing = [
        f"{field} is {stored.get(field)!r} there, {wanted[field]!r} now"
        for field in ("key", "n_images", "feature_dim", "dtype")
        if stored.get(field) != wanted[field]
    ]
    if not isinstance(stored.get("chunk_size"), int) or stored["chunk_size"] < 1:
        differing.append(f"chunk_size is {stored.get('chunk_size')!r} there")
    if differing:
        raise SemretError(
            f"{directory}: the cached features do not match this request ({'; '.join(differing)}); "
            "delete that directory or call FeatureCache.clear(key) to compute them again"
        )


def _read_array(file: Path, shape: tuple[int, int], what: str) -> npt.NDArray[np.float32] | None:
    """A stored float32 array of ``shape``; None if absent, or (with a warning) if damaged."""
    if not file.exists():
        return None
    try:
        values = np.load(file, allow_pickle=False)
        problem = None
        if not isinstance(values, np.ndarray) or values.dtype != np.float32 or values.shape != shape:
            problem = f"expected float32 {shape}, found {getattr(values, 'dtype', '?')} {getattr(values, 'shape', '?')}"
        elif not np.isfinite(values).all():
            problem = "it holds NaN or infinite values"
    except (OSError, ValueError, EOFError) as exc:
        problem = f"unreadable: {exc}"
    if problem is None:
        return values
    warnings.warn(
        f"{file}: damaged cached {what} ({problem}); computing its features again", FeatureCacheWarning, stacklevel=4
    )
    return None


def _save_npy(file: Path, values: npt.NDArray[np.float32]) -> None:
    temporary = file.with_name(file.name + ".partial")
    with temporary.open("wb") as stream:
        np.save(stream, values, allow_pickle=False)
    os.replace(temporary, file)  # never a half-written array under the real name


def _write_atomically(file: Path, data: bytes) -> None:
    temporary = file.with_name(file.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, file)
