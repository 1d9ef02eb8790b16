"""Damaged ``.npz`` files (empty, truncated, a bad CRC, corrupt compressed data) are one clear error
naming the file: from `load_npz` and every reader built on it, and in the CLI commands that read them."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from semret.errors import SemretError
from semret.iwan.links import read_predictions
from semret.vision.arrays import load_npz, read_labelled_arrays

from helpers import FASHION_MNIST_LABELS, ok, semret

NAMES = np.array(FASHION_MNIST_LABELS)


def features_file(path: Path, compressed: bool = False) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 40)
    save = np.savez_compressed if compressed else np.savez
    save(
        path,
        image_ids=np.arange(40),
        features=rng.normal(size=(40, 8)).astype(np.float32),
        labels=labels,
        class_names=NAMES,
    )
    return path


def predictions_file(path: Path) -> Path:
    probabilities = np.random.default_rng(1).dirichlet(np.ones(10), size=40)
    np.savez(path, image_ids=np.arange(40), probabilities=probabilities, class_names=NAMES)
    return path


def truncated(source: Path, out: Path) -> Path:
    out.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return out


def empty(_: Path, out: Path) -> Path:
    out.write_bytes(b"")
    return out


def bad_crc(source: Path, out: Path) -> Path:
    """A byte in the middle of the largest member's data flipped (past the .npy header): the
    archive's directory is intact, the member's CRC-32 no longer matches (found only when that
    array is read) or, compressed, its deflate stream is broken."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    data[start + member.compress_size // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


DAMAGES: dict[str, Callable[[Path, Path], Path]] = {"truncated": truncated, "empty": empty, "bad-crc": bad_crc}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_load_npz_names_the_file_and_the_problem(damage: str, tmp_path: Path) -> None:
    good = features_file(tmp_path / "good.npz")
    assert set(load_npz(good, ("features",))) == {"image_ids", "features", "labels", "class_names"}
    bad = DAMAGES[damage](good, tmp_path / f"{damage}.npz")
    expected = "the file is empty" if damage == "empty" else r"not a readable \.npz archive \(truncated or corrupt\?\)"
    for read in (lambda: load_npz(bad, ()), lambda: read_labelled_arrays(bad), lambda: read_predictions(bad)):
        with pytest.raises(SemretError, match=rf"{damage}\.npz: {expected}") as raised:
            read()
        assert "\n" not in str(raised.value)
    if damage == "bad-crc":
        assert "CRC" in str(raised.value)


def test_other_unreadable_files(tmp_path: Path) -> None:
    corrupt = bad_crc(features_file(tmp_path / "packed.npz", compressed=True), tmp_path / "corrupt.npz")
    with pytest.raises(SemretError, match=r"corrupt\.npz: not a readable \.npz archive"):
        load_npz(corrupt, ())
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(SemretError, match=r"single\.npy: a single array \(\.npy\), not an \.npz archive"):
        load_npz(tmp_path / "single.npy", ())
    (tmp_path / "text.npz").write_text("not numbers\n")
    with pytest.raises(SemretError, match=r"text\.npz: not an \.npz archive \(it does not start as a zip file does\)"):
        load_npz(tmp_path / "text.npz", ())
    with pytest.raises(SemretError, match=r"absent\.npz: no such file"):
        load_npz(tmp_path / "absent.npz", ())
    np.savez(tmp_path / "objects.npz", names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SemretError, match=r"objects\.npz: cannot read the arrays"):
        load_npz(tmp_path / "objects.npz", ())


def assert_one_line_error(result: object, name: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and "\n" not in stderr, stderr
    assert name in stderr and "Traceback" not in result.output  # type: ignore[attr-defined]
    assert result.exception is None or isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_the_commands_report_damaged_files(damage: str, tmp_path: Path, sqlite_url: str) -> None:
    features = DAMAGES[damage](features_file(tmp_path / "features.npz"), tmp_path / f"features-{damage}.npz")
    predictions = DAMAGES[damage](
        predictions_file(tmp_path / "predictions.npz"), tmp_path / f"predictions-{damage}.npz"
    )
    built = semret("index", "build", "--spec", "exact", "--features", features, "--out", tmp_path / "index.npz")
    assert_one_line_error(built, features.name)
    assert not (tmp_path / "index.npz").exists()
    trained = semret("hash", "train", features, "--hierarchy", "fashion-mnist", "--out", tmp_path / "model.pt")
    assert_one_line_error(trained, features.name)
    assert not (tmp_path / "model.pt").exists()
    ok("db", "upgrade", "--db", sqlite_url)
    assert_one_line_error(
        semret("iwan", "link", predictions, "--collection", "c", "--db", sqlite_url), predictions.name
    )
