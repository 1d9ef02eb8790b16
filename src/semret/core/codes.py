"""Binary hash codes: packing, thresholding and the int64 form stored in SQL.

A code of ``h`` bits is a row of an (n, h) 0/1 array. Packed, it is a row of ``ceil(h / 8)``
uint8 bytes in big-endian bit order (`np.packbits`' default): bit ``i`` of the code is bit
``7 - i % 8`` (value ``2 ** (7 - i % 8)``) of byte ``i // 8``, so the first bit is the most
significant bit of the first byte. When ``h`` is not a multiple of 8 the last byte is padded with
zero bits (its low ``8 * ceil(h / 8) - h`` bits). Every packed code in semret follows this layout;
`semret.core.hamming.HammingIndex` and `faiss.IndexBinaryFlat` read it as it is (faiss' hash
tables, which read a byte's bits from the least significant one up, get each byte's bits reversed
from `HammingIndex`, so that their substrings are bits ``h*b .. (h+1)*b - 1`` of the code).

Codes of at most 64 bits also have an integer form for SQL (`codes_to_int64`): the code read as an
h-bit unsigned integer, first bit most significant, stored as a signed int64 (two's complement),
so that it fits a PostgreSQL ``BIGINT``. For h < 64 the value is in [0, 2**h); for h = 64 codes
whose first bit is 1 are negative. The conversion round-trips exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

__all__ = [
    "code_bytes",
    "codes_from_activations",
    "codes_to_int64",
    "int64_to_codes",
    "pack_codes",
    "unpack_codes",
]


def code_bytes(n_bits: int) -> int:
    """Bytes of one packed code of ``n_bits`` bits: ``ceil(n_bits / 8)``."""
    _check_n_bits(n_bits)
    return (n_bits + 7) // 8


def pack_codes(bits: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Pack an (n, h) array of 0/1 (or booleans) into (n, ceil(h / 8)) uint8, big-endian bit order.

    Any other value than 0/1 (or False/True) is an error. Padding bits are zero.
    """
    array = np.asarray(bits)
    if array.ndim != 2:
        raise SemretError(f"codes to pack must be a 2-d (codes, bits) array, got shape {array.shape}")
    if array.shape[1] < 1:
        raise SemretError("codes to pack need at least one bit")
    if array.dtype != np.bool_:
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise SemretError(f"codes to pack must be 0/1 or booleans, got dtype {array.dtype}")
        if array.size and not np.all((array == 0) | (array == 1)):
            raise SemretError("codes to pack must contain only 0 and 1 (use codes_from_activations for scores)")
        array = array != 0
    return np.packbits(array, axis=1)


def unpack_codes(packed: npt.ArrayLike, n_bits: int) -> npt.NDArray[np.uint8]:
    """The (n, n_bits) 0/1 uint8 bits of packed codes (the inverse of `pack_codes`)."""
    array = check_packed(packed, n_bits)
    return np.unpackbits(array, axis=1, count=n_bits)


def codes_from_activations(activations: npt.ArrayLike, threshold: float = 0.5) -> npt.NDArray[np.uint8]:
    """Packed codes from hash-layer outputs: bit = 1 where the activation is > ``threshold``.

    With the sigmoid hash layer of Lin et al. (2015) the threshold is 0.5. Activations are an
    (n, h) float array (a torch tensor is converted with ``np.asarray``); NaN is an error.
    """
    array = np.asarray(activations)
    if array.ndim != 2:
        raise SemretError(f"activations must be a 2-d (codes, bits) array, got shape {array.shape}")
    if array.shape[1] < 1:
        raise SemretError("activations need at least one bit")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise SemretError(f"activations must be numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise SemretError("activations contain NaN")
    return np.packbits(array > threshold, axis=1)


def codes_to_int64(packed: npt.ArrayLike, n_bits: int) -> npt.NDArray[np.int64]:
    """Packed codes of ``n_bits`` <= 64 bits as int64 values: the h-bit unsigned integer with the
    first bit most significant, reinterpreted as signed (only for h = 64 can it be negative)."""
    if not 1 <= n_bits <= 64:
        raise SemretError(f"only codes of 1 to 64 bits have an int64 form, got {n_bits} bits")
    array = check_packed(packed, n_bits)
    padded = np.zeros((len(array), 8), dtype=np.uint8)
    padded[:, : array.shape[1]] = array
    values = padded.view(">u8")[:, 0] >> np.uint64(64 - n_bits)
    return values.astype(np.uint64).view(np.int64)


def int64_to_codes(values: npt.ArrayLike, n_bits: int) -> npt.NDArray[np.uint8]:
    """Packed codes from their int64 form (the inverse of `codes_to_int64`); values must fit h bits."""
    if not 1 <= n_bits <= 64:
        raise SemretError(f"only codes of 1 to 64 bits have an int64 form, got {n_bits} bits")
    array = np.asarray(values)
    if array.ndim != 1:
        raise SemretError(f"int64 codes must be a 1-d array, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise SemretError(f"int64 codes must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise SemretError("int64 codes must fit a signed int64")
    signed = array.astype(np.int64)
    if n_bits < 64 and signed.size and (int(signed.min()) < 0 or int(signed.max()) >= 1 << n_bits):
        raise SemretError(f"int64 codes of {n_bits} bits must be in [0, 2**{n_bits})")
    shifted = signed.view(np.uint64) << np.uint64(64 - n_bits)
    as_bytes = shifted.astype(">u8").view(np.uint8).reshape(len(signed), 8)
    return np.ascontiguousarray(as_bytes[:, : code_bytes(n_bits)])


def check_packed(packed: npt.ArrayLike, n_bits: int, what: str = "codes") -> npt.NDArray[np.uint8]:
    """``packed`` as a C-contiguous (n, ceil(n_bits / 8)) uint8 array with zero padding bits.

    Raises `SemretError` on another shape, dtype or byte width, or on padding bits that are set.
    """
    n_bytes = code_bytes(n_bits)
    array = np.asarray(packed)
    if array.ndim != 2:
        raise SemretError(f"packed {what} must be a 2-d (codes, bytes) uint8 array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise SemretError(f"packed {what} must be uint8 (see pack_codes), got dtype {array.dtype}")
    if array.shape[1] != n_bytes:
        raise SemretError(f"packed {what} of {n_bits} bits must have {n_bytes} bytes per code, got {array.shape[1]}")
    pad = 8 * n_bytes - n_bits
    if pad and len(array) and np.any(array[:, -1] & np.uint8((1 << pad) - 1)):
        raise SemretError(f"packed {what} of {n_bits} bits have padding bits set in their last byte")
    return np.ascontiguousarray(array)


def _check_n_bits(n_bits: int) -> None:
    if isinstance(n_bits, bool) or not isinstance(n_bits, int | np.integer) or n_bits < 1:
        raise SemretError(f"the number of bits must be a positive integer, got {n_bits!r}")
