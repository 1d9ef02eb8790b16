"""Feature extraction on ONNX Runtime: exported once, cached, equal to torch within the tolerance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from semret.app.demo import sample_dir
from semret.errors import SemretError
from semret.vision import onnx_runtime
from semret.vision.backbones import Backbone, make_backbone
from semret.vision.datasets import load_dataset
from semret.vision.features import FeatureCache, FeatureKey, extract_features
from semret.vision.onnx_runtime import OnnxCacheWarning, clear_sessions, onnx_features

from helpers import ok, semret

#: A few real images: the shipped Fashion-MNIST sample's first test images (28 x 28 grey).
IMAGES = load_dataset("fashion-mnist", "test", sample_dir()).images[:5]


@pytest.fixture(autouse=True)
def fresh_sessions() -> Iterator[None]:
    """Every test starts without this process' sessions, so that files are read (or exported)."""
    clear_sessions()
    yield
    clear_sessions()


def assert_close_to_torch(backbone: Backbone, values: np.ndarray) -> float:
    expected = extract_features(backbone, IMAGES, batch_size=2, engine="torch")
    difference = float(np.max(np.abs(values - expected)))
    assert difference <= onnx_runtime.TOLERANCE * max(1.0, float(np.abs(expected).max()))
    return difference


def test_efficientnet_lite0_runs_on_onnx_runtime_by_default(tmp_path: Path) -> None:
    backbone = make_backbone("efficientnet-lite0", "imagenet", 64)
    network = onnx_features(backbone, tmp_path)
    assert network.exported and network.exporter == "torchscript"
    assert network.path.parent == tmp_path / "onnx" and network.path.name.startswith(
        "efficientnet-lite0_imagenet_64px_"
    )
    assert 0 <= network.max_abs_diff <= 1e-4 * 10  # features of at most ~10 on the probe batch
    reports: list[tuple[str, int, int]] = []
    values = extract_features(backbone, IMAGES, batch_size=2, progress=lambda *a: reports.append(a), cache_dir=tmp_path)
    assert values.shape == (5, 1280) and values.dtype == np.float32
    assert reports == [("features", 2, 5), ("features", 4, 5), ("features", 5, 5)]
    np.testing.assert_array_equal(values, extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path))
    assert assert_close_to_torch(backbone, values) > 0  # not torch itself: ORT's kernels round differently
    stored = {entry.key: entry.value for entry in onnx.load(str(network.path)).metadata_props}
    assert '"backbone": "efficientnet-lite0"' in stored["semret.key"] and '"image_size": 64' in stored["semret.key"]
    assert float(stored["semret.export_max_abs_diff"]) == network.max_abs_diff


def test_the_second_exporter_where_the_first_cannot_export(tmp_path: Path) -> None:
    # small-cnn at 16 px pools 2 x 2 up to 4 x 4, which the TorchScript exporter cannot export
    # (AlexNet below 224 px is the same case; a ResNet-50 export would cost seconds more here)
    small = make_backbone("small-cnn", "none", 16, seed=0)
    assert onnx_features(small, tmp_path).exporter == "dynamo"
    assert_close_to_torch(small, extract_features(small, IMAGES, engine="onnx", cache_dir=tmp_path))


def test_the_file_is_exported_once_and_keyed_by_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = make_backbone("small-cnn", "none", 32, seed=0)
    first = onnx_features(backbone, tmp_path)
    written = first.path.stat().st_mtime_ns
    assert first.exported and onnx_features(backbone, tmp_path).exported is False  # this process' session
    clear_sessions()

    def no_export(_: Backbone) -> tuple[bytes, str]:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_runtime, "_export", no_export)
    again = onnx_features(backbone, tmp_path)  # read from the file
    assert not again.exported and again.path == first.path and first.path.stat().st_mtime_ns == written
    np.testing.assert_array_equal(
        extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path),
        np.asarray(first.run(backbone.preprocess(IMAGES).numpy())),
    )
    monkeypatch.undo()
    with torch.no_grad():  # other weights under the same weights id ("none"): another file
        next(backbone.module.parameters()).add_(0.5)
    changed = onnx_features(backbone, tmp_path)
    assert changed.exported and changed.path != first.path
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([first.path.name, changed.path.name])
    assert_close_to_torch(backbone, extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path))


def test_a_damaged_or_foreign_cached_file_is_exported_again(tmp_path: Path) -> None:
    backbone = make_backbone("small-cnn", "none", 32, seed=0)
    path = onnx_features(backbone, tmp_path).path
    expected = extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:5000])  # truncated
    clear_sessions()
    with pytest.warns(OnnxCacheWarning, match=r"cached ONNX network not usable \(unreadable .*exporting it again"):
        assert onnx_features(backbone, tmp_path).exported
    np.testing.assert_array_equal(extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path), expected)

    other = onnx_features(make_backbone("small-cnn", "none", 32, seed=1), tmp_path).path
    path.write_bytes(other.read_bytes())  # a valid model of other weights under this name
    clear_sessions()
    with pytest.warns(OnnxCacheWarning, match="its metadata describe another network"):
        assert onnx_features(backbone, tmp_path).exported
    np.testing.assert_array_equal(extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path), expected)


def test_a_cache_that_cannot_be_written_runs_the_network_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backbone = make_backbone("small-cnn", "none", 32, seed=0)

    def read_only(*_: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(onnx_runtime.os, "replace", read_only)
    with pytest.warns(OnnxCacheWarning, match="cannot write the exported ONNX network .*without caching it"):
        values = extract_features(backbone, IMAGES, engine="onnx", cache_dir=tmp_path)
    assert_close_to_torch(backbone, values)
    assert not list((tmp_path / "onnx").iterdir())  # nor a temporary file


def test_an_export_beyond_the_tolerance_and_a_wrong_engine_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backbone = make_backbone("small-cnn", "none", 32, seed=0)
    monkeypatch.setattr(onnx_runtime, "_difference", lambda *_: (0.5, 2.0))
    with pytest.raises(SemretError, match=r"differs from torch by 0.5 on the probe batch.*use engine 'torch'"):
        onnx_features(backbone, tmp_path)
    assert not (tmp_path / "onnx").exists() or not any((tmp_path / "onnx").iterdir())  # nothing kept
    with pytest.raises(SemretError, match="engine must be one of auto, onnx, torch, got 'tensorrt'"):
        extract_features(backbone, IMAGES, engine="tensorrt")
    key = FeatureKey.for_backbone("fashion-mnist", "test", "ab12", backbone)
    with pytest.raises(SemretError, match="engine must be one of"):
        FeatureCache(tmp_path).features(key, IMAGES, backbone, engine="gpu")
    assert not (tmp_path / "features").exists()


def test_the_feature_cache_and_the_cli_take_the_engine(tmp_path: Path) -> None:
    backbone = make_backbone("small-cnn", "none", 32, seed=0)
    cache, key = FeatureCache(tmp_path, chunk_size=3), FeatureKey.for_backbone("d", "test", "ab12", backbone)
    on_onnx = cache.features(key, IMAGES, backbone, batch_size=2, engine="onnx")
    assert (tmp_path / "onnx").is_dir()  # the file lies beside the features
    assert_close_to_torch(backbone, on_onnx)

    url = f"sqlite+pysqlite:///{tmp_path / 'semret.sqlite3'}"
    ok("db", "upgrade", "--db", url)
    ok("collection", "import", "--dataset", "fashion-mnist", "--data-dir", sample_dir(), "--split", "test", "--db", url)
    common = [
        "--collection",
        "fashion-mnist-test",
        "--backbone",
        "small-cnn",
        "--weights",
        "none",
        "--image-size",
        "32",
    ]
    cli_cache = tmp_path / "cli-cache"
    first = ok("features", "extract", *common, "--engine", "onnx", "--cache-dir", cli_cache, "--db", url)
    assert "computed on onnx (max |ORT - torch|" in first.stdout and str(cli_cache / "onnx") in first.stdout
    torch_run = ok("features", "extract", *common, "--engine", "torch", "--cache-dir", tmp_path / "t", "--db", url)
    assert "computed on torch;" in torch_run.stdout
    wrong = semret("features", "extract", *common, "--engine", "tpu", "--cache-dir", cli_cache, "--db", url)
    assert wrong.exit_code == 1 and "engine must be one of auto, onnx, torch, got 'tpu'" in wrong.stderr
