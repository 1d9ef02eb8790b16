"""Feature extraction and the feature cache: computing once, resuming, damaged parts, mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semret.errors import SemretError
from semret.vision import features as features_module
from semret.vision.backbones import Backbone, make_backbone
from semret.vision.features import (
    FeatureCache,
    FeatureCacheWarning,
    FeatureKey,
    default_cache_dir,
    extract_features,
)

IMAGES = np.random.default_rng(0).integers(0, 255, (10, 12, 12), dtype=np.uint8)


@pytest.fixture
def backbone() -> Backbone:
    return make_backbone("small-cnn", "none", 16, seed=0)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of images of every `extract_features` call the cache makes."""
    made: list[int] = []
    extract = features_module.extract_features

    def counting(backbone: Backbone, images: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        made.append(len(images))
        return extract(backbone, images, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(features_module, "extract_features", counting)
    return made


def key_of(backbone: Backbone, content: str = "0123abcd") -> FeatureKey:
    return FeatureKey.for_backbone("fashion-mnist", "test", content, backbone)


def interrupted(cache: FeatureCache, key: FeatureKey, backbone: Backbone, after: int) -> None:
    """Run the cache until ``after`` images are done, then stop as a Ctrl-C would."""

    def stop(_: str, done: int, __: int) -> None:
        if done >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.features(key, IMAGES, backbone, batch_size=4, progress=stop)


def test_extract_features_batches_in_eval_mode(backbone: Backbone) -> None:
    reports: list[tuple[str, int, int]] = []
    backbone.module.train()
    values = extract_features(backbone, IMAGES, batch_size=4, progress=lambda *a: reports.append(a))
    assert values.shape == (10, 256) and values.dtype == np.float32
    assert reports == [("features", 4, 10), ("features", 8, 10), ("features", 10, 10)]
    assert backbone.module.training  # the mode is given back
    np.testing.assert_allclose(extract_features(backbone, IMAGES, batch_size=10), values, rtol=1e-5, atol=1e-6)
    assert extract_features(backbone, IMAGES[:0]).shape == (0, 256)
    with pytest.raises(SemretError, match="images must be uint8"):
        extract_features(backbone, IMAGES.astype(np.float32))


def test_the_cache_computes_once(tmp_path: Path, backbone: Backbone, calls: list[int]) -> None:
    cache, key = FeatureCache(tmp_path, chunk_size=4), key_of(backbone)
    assert not cache.is_complete(key)
    reports: list[tuple[str, int, int]] = []
    first = cache.features(key, IMAGES, backbone, batch_size=3, progress=lambda *a: reports.append(a))
    assert calls == [4, 4, 2]
    assert [done for _, done, _ in reports] == [3, 4, 7, 8, 10]  # batches within chunks, then each saved chunk
    np.testing.assert_allclose(first, extract_features(backbone, IMAGES), rtol=1e-5, atol=1e-6)
    assert cache.is_complete(key)
    directory = tmp_path / "features" / "fashion-mnist_test_0123abcd_small-cnn_none_16"
    assert sorted(p.name for p in directory.iterdir()) == ["features.npy", "metadata.json"]
    metadata = json.loads((directory / "metadata.json").read_text())
    assert (metadata["n_images"], metadata["feature_dim"], metadata["chunk_size"]) == (10, 256, 4)
    reports.clear()
    again = cache.features(key, IMAGES, backbone, progress=lambda *a: reports.append(a))
    assert calls == [4, 4, 2] and reports == [("features", 10, 10)]  # nothing computed
    np.testing.assert_array_equal(again, first)
    cache.clear(key)
    assert not directory.exists() and not cache.is_complete(key)


def test_an_interrupted_run_resumes_and_damaged_parts_are_recomputed(
    tmp_path: Path, backbone: Backbone, calls: list[int]
) -> None:
    cache, key = FeatureCache(tmp_path, chunk_size=4), key_of(backbone)
    interrupted(cache, key, backbone, after=8)  # parts 0 and 1 written
    directory = cache.directory(key)
    assert sorted(p.name for p in directory.glob("part-*.npy")) == ["part-00000.npy", "part-00001.npy"]
    assert not cache.is_complete(key)
    calls.clear()
    reports: list[tuple[str, int, int]] = []
    values = cache.features(key, IMAGES, backbone, batch_size=4, progress=lambda *a: reports.append(a))
    assert calls == [2] and reports == [("features", 4, 10), ("features", 8, 10), ("features", 10, 10)]
    np.testing.assert_allclose(values, extract_features(backbone, IMAGES), rtol=1e-5, atol=1e-6)

    cache.clear(key)
    interrupted(cache, key, backbone, after=10)  # every part written, not yet assembled
    (directory / "part-00001.npy").unlink()
    (directory / "part-00002.npy").write_bytes(b"\x93NUMPY garbage")
    calls.clear()
    with pytest.warns(FeatureCacheWarning, match=r"part-00002.npy: damaged cached part .*computing its features again"):
        values = cache.features(key, IMAGES, backbone)
    assert calls == [4, 2]  # the missing part and the damaged one, not part 0
    np.testing.assert_allclose(values, extract_features(backbone, IMAGES), rtol=1e-5, atol=1e-6)


def test_a_damaged_features_file_is_recomputed(tmp_path: Path, backbone: Backbone, calls: list[int]) -> None:
    cache, key = FeatureCache(tmp_path, chunk_size=4), key_of(backbone)
    expected = cache.features(key, IMAGES, backbone)
    np.save(cache.directory(key) / "features.npy", np.zeros((3, 256), dtype=np.float32))
    with pytest.warns(FeatureCacheWarning, match="damaged cached features file"):
        np.testing.assert_array_equal(cache.features(key, IMAGES, backbone), expected)
    assert calls == [4, 4, 2, 4, 4, 2]


def test_mismatched_metadata_is_an_error(tmp_path: Path, backbone: Backbone) -> None:
    cache, key = FeatureCache(tmp_path, chunk_size=4), key_of(backbone)
    cache.features(key, IMAGES, backbone)
    with pytest.raises(
        SemretError, match=r"n_images is 10 there, 6 now.*delete that directory or call FeatureCache.clear"
    ):
        cache.features(key, IMAGES[:6], backbone)
    assert np.array_equal(FeatureCache(tmp_path, chunk_size=3).features(key, IMAGES, backbone).shape, (10, 256))

    other = key_of(backbone, "feedbeef")
    interrupted(cache, other, backbone, after=4)
    with pytest.raises(SemretError, match=r"cached parts hold 4 images each.*chunk_size=4"):
        FeatureCache(tmp_path, chunk_size=3).features(other, IMAGES, backbone)
    metadata = cache.directory(other) / "metadata.json"
    metadata.write_text(metadata.read_text().replace('"feature_dim": 256', '"feature_dim": 128'))
    with pytest.raises(SemretError, match="feature_dim is 128 there, 256 now"):
        cache.features(other, IMAGES, backbone)
    metadata.write_text("{not json")
    with pytest.raises(SemretError, match="unreadable feature cache metadata"):
        cache.features(other, IMAGES, backbone)


def test_keys_must_describe_the_backbone(tmp_path: Path, backbone: Backbone) -> None:
    cache = FeatureCache(tmp_path)
    with pytest.raises(SemretError, match="the feature key's image_size is 32 but the backbone's is 16"):
        cache.features(FeatureKey("d", "s", "c", "small-cnn", "none", 32), IMAGES, backbone)
    with pytest.raises(SemretError, match="weights is 'imagenet'"):
        cache.features(FeatureKey("d", "s", "c", "small-cnn", "imagenet", 16), IMAGES, backbone)
    with pytest.raises(SemretError, match="split must be a non-empty string"):
        FeatureKey("d", "", "c", "small-cnn", "none", 16)
    with pytest.raises(SemretError, match="chunk size must be a positive integer"):
        FeatureCache(tmp_path, chunk_size=0)


def test_directory_names_are_safe_and_readable() -> None:
    key = FeatureKey("fashion-mnist", "test", "ab12", "efficientnet-lite0", "imagenet", 112)
    assert key.directory_name() == "fashion-mnist_test_ab12_efficientnet-lite0_imagenet_112"
    weighted = FeatureKey("my data/set", "train", "ab12", "small-cnn", "sha256:0123456789abcdef", 32)
    assert weighted.directory_name() == "my-data-set_train_ab12_small-cnn_sha256-0123456789abcdef_32"
    long = FeatureKey("d", "s", "f" * 300, "small-cnn", "none", 32).directory_name()
    assert len(long) <= 180 and long != FeatureKey("d", "s", "f" * 299, "small-cnn", "none", 32).directory_name()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMRET_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert FeatureCache().root == tmp_path / "mine"
    monkeypatch.delenv("SEMRET_CACHE_DIR")
    assert default_cache_dir().name == "semret"
