"""The IDX reader and writer: round trips, and files that are truncated or not IDX at all."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from semret.errors import SemretError
from semret.vision.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["values.idx", "values.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path: Path, name: str, dtype: type) -> None:
    values = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, values)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, values)
    back[0, 0, 0] = 1  # writable, native byte order


def test_gzip_is_recognised_by_content_and_the_format_is_big_endian(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", np.array([1, 2, 300], dtype=np.int32))
    raw = gzip.decompress((tmp_path / "labels.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x0c\x01" and raw[4:8] == (3).to_bytes(4, "big")
    assert raw[-4:] == (300).to_bytes(4, "big")
    (tmp_path / "plain-named").write_bytes((tmp_path / "labels.gz").read_bytes())
    assert read_idx(tmp_path / "plain-named").tolist() == [1, 2, 300]


def test_mnist_style_header(tmp_path: Path) -> None:
    """The first bytes of t10k-labels-idx1-ubyte: magic 2049, then 10,000 (here 3) items."""
    file = tmp_path / "t10k-labels-idx1-ubyte"
    file.write_bytes((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([9, 0, 4]))
    assert read_idx(file).tolist() == [9, 0, 4]


def test_truncated_data_is_named(tmp_path: Path) -> None:
    write_idx(tmp_path / "images.gz", np.zeros((4, 5, 5), dtype=np.uint8))
    raw = gzip.decompress((tmp_path / "images.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(
        SemretError, match=r"short\.gz: truncated: dimensions 4 x 5 x 5 of uint8 need 100 data bytes, found 90"
    ):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "cut.gz").write_bytes((tmp_path / "images.gz").read_bytes()[:-8])
    with pytest.raises(SemretError, match=r"cut\.gz: the gzip data is truncated"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "header").write_bytes(raw[:6])
    with pytest.raises(SemretError, match=r"header: truncated: the header needs 16 bytes for 3 dimensions"):
        read_idx(tmp_path / "header")


def test_extra_bytes_bad_magic_and_unknown_type(tmp_path: Path) -> None:
    write_idx(tmp_path / "long", np.zeros(3, dtype=np.uint8))
    (tmp_path / "long").write_bytes((tmp_path / "long").read_bytes() + b"\x00")
    with pytest.raises(SemretError, match=r"long: 1 bytes more than dimensions 3"):
        read_idx(tmp_path / "long")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(SemretError, match=r"picture\.png: bad magic number 0x89504e47: not an IDX file"):
        read_idx(tmp_path / "picture.png")
    (tmp_path / "odd").write_bytes(b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(SemretError, match=r"odd: unknown IDX type code 0x07"):
        read_idx(tmp_path / "odd")
    with pytest.raises(SemretError, match=r"cannot read .*missing"):
        read_idx(tmp_path / "missing")


def test_write_rejects_what_idx_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match="IDX cannot hold int64"):
        write_idx(tmp_path / "x", np.zeros(2, dtype=np.int64))
