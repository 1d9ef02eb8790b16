"""One place for the checks that every parameter and array goes through.

Each check returns the value in its canonical type or raises a `SemretError` whose message names
the parameter, the allowed range and the value given, so users read one kind of message whatever
layer they call into.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

__all__ = [
    "MAX_K",
    "MAX_SEED",
    "check_absent",
    "check_choice",
    "check_count",
    "check_dim",
    "check_finite_array",
    "check_fraction",
    "check_ids",
    "check_int",
    "check_k",
    "check_labels",
    "check_non_negative",
    "check_number",
    "check_optional_int",
    "check_positive",
    "check_seed",
    "merge_sorted_ids",
]

#: The largest k a search takes: an int64 (results are bounded by the collection anyway).
MAX_K = int(np.iinfo(np.int64).max)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (no upper bound when ``high`` is None)."""
    if not _is_integer(value) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SemretError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def check_dim(dim: Any) -> int:
    """A vector dimension: a positive integer."""
    if not _is_integer(dim) or dim < 1:
        raise SemretError(f"the dimension must be a positive integer, got {dim!r}")
    return int(dim)


def check_optional_int(name: str, value: Any, low: int, high: int | None = None) -> int | None:
    """As `check_int`, with None allowed (and returned)."""
    return None if value is None else check_int(name, value, low, high)


def check_number(
    name: str, value: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with ``low_open``)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    number = float(value) if ok else math.nan
    if (
        not ok
        or not math.isfinite(number)
        or (low is not None and (number <= low if low_open else number < low))
        or (high is not None and number > high)
    ):
        if low is not None and high is not None:
            bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            bounds = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            bounds = f" <= {high:g}"
        else:
            bounds = ""
        raise SemretError(f"{name} must be a finite number{bounds}, got {value!r}")
    return number


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``choices``, else an error listing them."""
    if value not in choices:
        raise SemretError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return str(value)


def check_k(k: Any, name: str = "k") -> int:
    """``k`` as an int in [1, 2**63 - 1]. A larger k is an error; results are cut to what the
    collection holds by the searchers, so a huge k costs no memory."""
    if not _is_integer(k):
        raise SemretError(f"{name} must be an integer, got {k!r}")
    if k < 1:
        raise SemretError(f"{name} must be at least 1, got {k}")
    if k > MAX_K:
        raise SemretError(f"{name} must be at most {MAX_K} (an int64), got {k}")
    return int(k)


def check_finite_array(
    name: str, values: npt.ArrayLike, ndim: int, *, dtype: Any = np.float32, allow_empty: bool = True
) -> npt.NDArray[Any]:
    """``values`` as a C-contiguous array of ``ndim`` dimensions and ``dtype``, every value finite."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise SemretError(f"{name} must be an array of numbers ({exc})") from None
    if array.ndim != ndim:
        raise SemretError(f"{name} must be a {ndim}-d array, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise SemretError(f"{name} must be real numbers, got dtype {array.dtype}")
    if not allow_empty and array.size == 0:
        raise SemretError(f"{name} must not be empty, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise SemretError(f"{name} contain NaN or infinite values")
    return np.ascontiguousarray(array, dtype=dtype)


def check_ids(ids: npt.ArrayLike, n: int, what: str = "ids") -> npt.NDArray[np.int64]:
    """``ids`` as a 1-d int64 array of ``n`` distinct non-negative integers."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise SemretError(f"{what} must be a 1-d array, got shape {array.shape}")
    if len(array) != n:
        raise SemretError(f"got {len(array)} {what} for {n} rows")
    if array.size and array.dtype.kind not in "iu":
        raise SemretError(f"{what} must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise SemretError(f"{what} must fit int64")
    result = array.astype(np.int64)
    if result.size and int(result.min()) < 0:
        raise SemretError(f"{what} must be >= 0 (-1 marks a missing result)")
    ordered = np.sort(result)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        raise SemretError(f"duplicate {what}: {np.unique(repeated)[:5].tolist()}")
    return result


def check_absent(old_ids: npt.NDArray[np.int64], new_ids: npt.NDArray[np.int64], what: str = "ids") -> None:
    """An error if one of ``new_ids`` is among the ascending ``old_ids``."""
    if len(old_ids) and len(new_ids):
        at = np.searchsorted(old_ids, new_ids)
        inside = at < len(old_ids)
        present = new_ids[inside][old_ids[at[inside]] == new_ids[inside]]
        if len(present):
            raise SemretError(f"{what} already in the index: {np.unique(present)[:5].tolist()}")


def merge_sorted_ids(
    old_ids: npt.NDArray[np.int64], new_ids: npt.NDArray[np.int64], what: str = "ids"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
    """The merged ascending ids and the order that takes [old rows, new rows] to them (None when the
    new ids all come after the old ones and are ascending). Ids already present are an error."""
    check_absent(old_ids, new_ids, what)
    merged = np.concatenate([old_ids, new_ids])
    ascending = len(new_ids) < 2 or bool(np.all(new_ids[1:] > new_ids[:-1]))
    if ascending and (not len(old_ids) or not len(new_ids) or new_ids[0] > old_ids[-1]):
        return merged, None
    order = np.argsort(merged, kind="stable")
    return merged[order], order


#: The largest seed: torch's generators take 64-bit seeds (numpy's ``default_rng`` any non-negative int).
MAX_SEED = 2**64 - 1


def check_count(name: str, value: Any, least: int = 1, most: int | None = None) -> int:
    """``value`` as an int of at least ``least`` and at most ``most`` (epochs, batch sizes, numbers
    of classes or bits); as `check_int`, in the words of the learned models' messages."""
    if not _is_integer(value) or value < least or (most is not None and value > most):
        if most is None:
            raise SemretError(f"{name} must be an integer of at least {least}, got {value!r}")
        raise SemretError(f"{name} must be between {least} and {most} (an integer), got {value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int in [0, 2**64 - 1], what torch's and numpy's generators both take."""
    return check_int(name, seed, 0, MAX_SEED)


def _finite_number(value: Any) -> float | None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    number = float(value) if ok else math.nan
    return number if math.isfinite(number) else None


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float > 0 (a learning rate)."""
    number = _finite_number(value)
    if number is None or number <= 0:
        raise SemretError(f"{name} must be positive, got {value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0 (a weight decay, a loss weight)."""
    number = _finite_number(value)
    if number is None or number < 0:
        raise SemretError(f"{name} must not be negative, got {value!r}")
    return number


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a finite float in [0, 1) (a momentum)."""
    number = _finite_number(value)
    if number is None or not 0 <= number < 1:
        raise SemretError(f"{name} must be in [0, 1), got {value!r}")
    return number


def check_labels(labels: npt.ArrayLike, n_classes: int | None = None, name: str = "labels") -> npt.NDArray[np.int64]:
    """``labels`` as a 1-d int64 array of class indices in 0..n_classes - 1 (any index >= 0 when
    ``n_classes`` is None). How many there must be is the caller's to check: its message names the rows."""
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise SemretError(f"{name} must be a 1-d array of class indices, got {array.dtype} {array.shape}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or (n_classes is not None and high >= n_classes):
            upper = "n_classes - 1" if n_classes is None else str(n_classes - 1)
            raise SemretError(f"{name} must be class indices in 0..{upper}, got {low}..{high}")
    return array.astype(np.int64)
