"""Labelled arrays in ``.npz`` files: the plain interchange format for images or features.

A file holds ``image_ids`` (n integers), ``labels`` (n class indices or class names),
``class_names`` (the classes) and one data array: ``images`` (uint8, (n, h, w) or (n, h, w, 3)) or
``features`` (float, (n, dims)). Every problem is reported with the file and the array it is in;
a missing, empty, truncated or corrupt file (a bad CRC shows only when its array is read) is one
`SemretError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError

DATA_KEYS = ("images", "features")
_ZIP_MAGIC = b"PK"
_NPY_MAGIC = b"\x93NUMPY"


@dataclass
class LabelledArrays:
    """Images or features with their ids and labels (indices into ``class_names``)."""

    image_ids: npt.NDArray[np.int64]
    data: npt.NDArray[Any]
    kind: str  # "images" or "features"
    labels: npt.NDArray[np.int64]
    class_names: list[str]

    def label_names(self) -> list[str | None]:
        """Each image's label as a class name."""
        return [self.class_names[i] for i in self.labels]


def load_npz(path: str | Path, required: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
    """Every array of an ``.npz`` file (no pickles), with the ``required`` ones checked present."""
    file = Path(path)
    if not file.is_file():
        raise SemretError(f"{file}: no such file")
    try:
        with file.open("rb") as stream:
            start = stream.read(len(_NPY_MAGIC))
        if not start:
            raise SemretError(f"{file}: the file is empty, not an .npz archive")
        if not start.startswith(_ZIP_MAGIC) and start != _NPY_MAGIC:
            raise SemretError(f"{file}: not an .npz archive (it does not start as a zip file does)")
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SemretError(f"{file}: a single array (.npy), not an .npz archive of named arrays")
        with loaded as archive:  # each member is read, and its CRC checked, here
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise SemretError(f"{file}: not a readable .npz archive (truncated or corrupt?): {_one_line(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise SemretError(f"{file}: cannot read the arrays ({_one_line(exc)})") from exc
    for key in required:
        if key not in arrays:
            raise SemretError(f"{file}: no array {key!r} (it has {', '.join(sorted(arrays)) or 'none'})")
    return arrays


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def save_npz(path: str | Path, arrays: dict[str, npt.ArrayLike]) -> Path:
    """Write ``arrays`` to an ``.npz`` file at exactly ``path`` (numpy would add ``.npz`` to a name
    without it), atomically: a half-written file never has the real name. The path written."""
    file = Path(path)
    temporary = file.with_name(file.name + ".partial")
    try:
        with temporary.open("wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, file)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise SemretError(f"cannot write {file}: {exc.strerror or exc}") from exc
    return file


def write_labelled_arrays(path: str | Path, arrays: LabelledArrays) -> Path:
    """Write labelled images or features as `read_labelled_arrays` reads them (labels as class indices)."""
    return save_npz(
        path,
        {
            "image_ids": np.asarray(arrays.image_ids, dtype=np.int64),
            arrays.kind: arrays.data,
            "labels": np.asarray(arrays.labels, dtype=np.int64),
            "class_names": np.array(arrays.class_names),
        },
    )


def read_labelled_arrays(path: str | Path) -> LabelledArrays:
    """Read and check a labelled ``.npz`` file (see the module docstring)."""
    file = Path(path)
    arrays = load_npz(file, ("image_ids", "labels", "class_names"))
    present = [key for key in DATA_KEYS if key in arrays]
    if len(present) != 1:
        raise SemretError(f"{file}: needs exactly one of the arrays {' or '.join(DATA_KEYS)}")
    kind = present[0]
    data, ids = arrays[kind], arrays["image_ids"]
    class_names = [str(name) for name in arrays["class_names"]]
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise SemretError(f"{file}: image_ids must be a 1-d integer array")
    if len(np.unique(ids)) != len(ids):
        raise SemretError(f"{file}: image_ids repeat")
    if len(data) != len(ids) or len(arrays["labels"]) != len(ids):
        raise SemretError(f"{file}: {len(ids)} image ids, {len(data)} {kind} and {len(arrays['labels'])} labels")
    if kind == "images" and (data.dtype != np.uint8 or data.ndim not in (3, 4)):
        raise SemretError(f"{file}: images must be uint8 (n, h, w) or (n, h, w, 3), got {data.dtype} {data.shape}")
    if kind == "features" and (data.ndim != 2 or not np.isfinite(data).all()):
        raise SemretError(f"{file}: features must be a finite (n, dims) array")
    return LabelledArrays(
        ids.astype(np.int64), data, kind, _label_indices(arrays["labels"], class_names, file), class_names
    )


def _label_indices(labels: npt.NDArray[Any], class_names: list[str], file: Path) -> npt.NDArray[np.int64]:
    if np.issubdtype(labels.dtype, np.integer):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise SemretError(f"{file}: labels must be class indices in 0..{len(class_names) - 1}")
        return labels.astype(np.int64)
    position = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(label) for label in labels} - position.keys())
    if unknown:
        raise SemretError(f"{file}: labels not in class_names: {', '.join(unknown[:10])}")
    return np.array([position[str(label)] for label in labels], dtype=np.int64)
