"""The IDX format of the original MNIST and Fashion-MNIST files, plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order, big-endian. `read_idx` checks every
part against the file so that a truncated download or a wrong file is named instead of giving
garbage arrays; `write_idx` writes the same format (tests and small samples use it).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

#: IDX type code -> numpy dtype (big-endian, as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER = 4


def _read_bytes(file: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its first bytes, not its name)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SemretError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise SemretError(f"{file}: the gzip data is truncated (an incomplete download?)") from None
    except (OSError, zlib.error) as exc:
        raise SemretError(f"{file}: corrupt gzip data ({exc})") from None


def read_idx(path: str | os.PathLike[str]) -> npt.NDArray[np.generic]:
    """The array in an IDX file (``.gz`` or plain), in native byte order.

    Raises `SemretError` naming the file for a bad magic number, an unknown type code, or data
    that is shorter or longer than the dimensions say.
    """
    file = Path(path)
    data = _read_bytes(file)
    if len(data) < _HEADER:
        raise SemretError(f"{file}: truncated: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise SemretError(
            f"{file}: bad magic number 0x{data[:4].hex()}: not an IDX file (it must start with two zero bytes)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())
        raise SemretError(f"{file}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise SemretError(f"{file}: the IDX header gives 0 dimensions")
    header = _HEADER + 4 * ndim
    if len(data) < header:
        raise SemretError(f"{file}: truncated: the header needs {header} bytes for {ndim} dimensions, got {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=_HEADER))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    dims = " x ".join(map(str, shape))
    if found < expected:
        raise SemretError(
            f"{file}: truncated: dimensions {dims} of {dtype.name} need {expected:,} data bytes, found {found:,}"
        )
    if found > expected:
        raise SemretError(
            f"{file}: {found - expected:,} bytes more than dimensions {dims} of {dtype.name} need ({expected:,})"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: npt.ArrayLike) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends with ``.gz``.

    The dtype must be one IDX has (uint8, int8, int16, int32, float32, float64).
    """
    values = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = values.dtype.newbyteorder("=")
    if native not in codes:
        raise SemretError(
            f"IDX cannot hold {values.dtype} values; use one of uint8, int8, int16, int32, float32, float64"
        )
    if not 1 <= values.ndim <= 255:
        raise SemretError(f"IDX holds 1 to 255 dimensions, not {values.ndim}")
    header = bytes([0, 0, codes[native], values.ndim]) + np.asarray(values.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(values, dtype=native.newbyteorder(">")).tobytes()
    file = Path(path)
    if file.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    file.write_bytes(payload)
