"""Labelled image datasets: Fashion-MNIST, CIFAR-10, CIFAR-100, STL-10 and folders of images per class.

`load_dataset` gives an `ImageSet`: images as uint8 arrays with stable ids, labels, class names
and where each image's pixels came from. `dataset_info` tells, without reading any image, a
dataset's classes, splits, class hierarchy and label vocabulary (for IWAN).

Ids are positions in a dataset's train-then-test order, with the test split starting at the
official size of the train split (Fashion-MNIST 60,000, CIFAR 50,000, STL-10 5,000), so the same
image has the same id whichever split is loaded, and even when a sample ships only one split.
STL-10's 100,000 unlabelled images (split ``unlabeled``, label -1) follow its test split (ids from
13,000). A folder dataset
numbers its image files in sorted order of their paths.

Where files are looked for, and what ``download`` does, is described in ``docs/datasets.md``.
Downloads go through torchvision; the files it leaves are read here, by semret's own readers, so
local copies (and the tests' tiny fakes) need no checksums to match.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import platformdirs

from semret.errors import SemretError
from semret.vision.hierarchy import ClassHierarchy, name_key
from semret.vision.idx import read_idx

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
]  # fmt: skip

#: CIFAR-100's 20 coarse classes (superclasses) and their five fine classes each, in the order of
#: the ``coarse_label_names`` of its meta file (the CIFAR-100 page, Krizhevsky 2009); the loader
#: checks it against every batch's ``coarse_labels``. The seed-002-iwan convention's "same parent".
CIFAR100_COARSE: dict[str, list[str]] = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}

STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]

TRAIN_TEST = ("train", "test", "all")
#: The split of images without labels (STL-10's), and the label they carry.
UNLABELED = "unlabeled"
NO_LABEL = -1
#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The four Fashion-MNIST IDX files of each split (images, labels), without ``.gz``.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".webp"})
FOLDER_HIERARCHY_FILE = "hierarchy.json"
FOLDER_ALIASES_FILE = "words.aliases"
#: Images hashed at a time by `ImageSet.fingerprint`.
_FINGERPRINT_IMAGES = 4096
#: Show a progress bar when a folder dataset has at least this many image files to read.
PROGRESS_MIN_FILES = 200


def default_data_root() -> Path:
    """Where downloads go when no data directory is given: ``<user cache dir>/semret/datasets``."""
    return Path(platformdirs.user_cache_dir("semret", appauthor=False)) / "datasets"


# --- image sets ----------------------------------------------------------------------------------


@dataclass
class ImageSet:
    """Images of one split of a dataset with their ids, labels and sources (row i of each belongs
    to image i)."""

    dataset: str
    split: str
    image_ids: npt.NDArray[np.int64]
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    class_names: list[str]
    sources: list[str]
    #: Each image's own split ("train" or "test" in an "all" set); filled with ``split`` when not given.
    image_splits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if not self.image_splits:
            self.image_splits = [self.split] * n
        if not (len(self.images) == len(self.labels) == len(self.sources) == len(self.image_splits) == n):
            raise ValueError(
                f"{n} image ids, {len(self.images)} images, {len(self.labels)} labels, {len(self.sources)} sources, "
                f"{len(self.image_splits)} image splits"
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, positions: npt.ArrayLike) -> ImageSet:
        """The rows at ``positions`` (integer positions, not ids), in that order."""
        rows = np.asarray(positions, dtype=np.int64).reshape(-1)
        return ImageSet(
            self.dataset,
            self.split,
            self.image_ids[rows],
            self.images[rows],
            self.labels[rows],
            list(self.class_names),
            [self.sources[int(r)] for r in rows],
            [self.image_splits[int(r)] for r in rows],
        )

    def fingerprint(self) -> str:
        """A short sha256 (16 hex digits) of the ids, labels and pixels: it changes when the content
        does, so it can key caches of features computed from these images."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.image_ids, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        digest.update(repr(self.images.shape).encode())
        for start in range(0, len(self.images), _FINGERPRINT_IMAGES):  # in pieces: no copy of a large set
            digest.update(np.ascontiguousarray(self.images[start : start + _FINGERPRINT_IMAGES], dtype=np.uint8).data)
        return digest.hexdigest()[:16]

    @property
    def labelled(self) -> bool:
        """Whether every image has a label (STL-10's ``unlabeled`` images have none: -1)."""
        return bool(len(self.labels) == 0 or self.labels.min() >= 0)

    def label_names(self) -> list[str]:
        """Each image's label as its class name ("" for an image without a label)."""
        return [self.class_names[int(i)] if i >= 0 else "" for i in self.labels]


def _concatenate(first: ImageSet, second: ImageSet, split: str) -> ImageSet:
    return ImageSet(
        first.dataset,
        split,
        np.concatenate([first.image_ids, second.image_ids]),
        np.concatenate([first.images, second.images]),
        np.concatenate([first.labels, second.labels]),
        list(first.class_names),
        first.sources + second.sources,
        first.image_splits + second.image_splits,
    )


# --- dataset descriptions ------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset before reading its images.

    ``hierarchy`` and ``vocabulary`` name packaged files; a folder dataset may bring its own in
    ``hierarchy_file`` (a JSON nested mapping) and ``vocabulary_file`` (an alias file) instead.
    """

    name: str
    class_names: list[str]
    hierarchy: str | None
    vocabulary: str | None
    splits: tuple[str, ...]
    hierarchy_file: Path | None = None
    vocabulary_file: Path | None = None
    #: The data set's own coarse classes, where it has them (CIFAR-100): coarse name -> classes.
    coarse_classes: dict[str, list[str]] | None = None

    def class_hierarchy(self) -> ClassHierarchy:
        """The dataset's class hierarchy: its own file, the packaged one, or a flat one (every class a
        leaf under one root)."""
        if self.hierarchy_file is not None:
            hierarchy = ClassHierarchy.from_file(self.hierarchy_file)
            try:
                hierarchy.require_classes(self.class_names)
            except SemretError as exc:
                raise SemretError(f"{self.hierarchy_file}: {exc}") from None
            return hierarchy
        if self.hierarchy is not None:
            return ClassHierarchy.packaged(self.hierarchy)
        keys = {name_key(c) for c in self.class_names}
        root = f"{self.name} classes"
        while name_key(root) in keys:
            root = f"{root} (root)"
        return ClassHierarchy.from_mapping({root: list(self.class_names)})

    def aliases(self) -> dict[str, list[str]]:
        """The label -> norm-word aliases for IWAN: the folder's own file, the packaged set, or none."""
        from semret.iwan.vocabulary import dataset_aliases, load_aliases  # the iwan package is heavier

        if self.vocabulary_file is not None:
            return load_aliases(self.vocabulary_file)
        if self.vocabulary is not None:
            return dataset_aliases(self.vocabulary)
        return {}


_BUILT_IN = {
    "cifar10": DatasetInfo("cifar10", CIFAR10_CLASSES, "cifar10", "cifar10", TRAIN_TEST),
    "cifar100": DatasetInfo(
        "cifar100", CIFAR100_CLASSES, "cifar100", "cifar100", TRAIN_TEST, coarse_classes=CIFAR100_COARSE
    ),
    "fashion-mnist": DatasetInfo("fashion-mnist", FASHION_MNIST_CLASSES, "fashion-mnist", "fashion-mnist", TRAIN_TEST),
    "stl10": DatasetInfo("stl10", STL10_CLASSES, "stl10", "stl10", (*TRAIN_TEST, UNLABELED)),
}
FOLDER = "folder"
#: Caltech-101 (Fei-Fei, Fergus and Perona 2004) in torchvision's layout: a folder per class under
#: ``caltech101/101_ObjectCategories``, read as a folder dataset, its ``BACKGROUND_Google`` clutter
#: class left out as torchvision leaves it out.
CALTECH101 = "caltech101"
CALTECH101_FOLDER = Path("caltech101") / "101_ObjectCategories"
CALTECH101_EXCLUDED = frozenset({"BACKGROUND_Google"})
#: The datasets read as a folder per class (their classes are their sub-folders).
FOLDER_DATASETS = frozenset({FOLDER, CALTECH101})


def dataset_names() -> list[str]:
    """The datasets `load_dataset` knows."""
    return sorted([*_BUILT_IN, *FOLDER_DATASETS])


def _check_name(name: str) -> None:
    if name not in dataset_names():
        raise SemretError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}")


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """A dataset's classes, splits, hierarchy and vocabulary. The folder dataset needs ``data_dir``
    (its classes are the sub-folders there); the others ignore it."""
    _check_name(name)
    if name == FOLDER:
        return _scan_folder(data_dir).info
    if name == CALTECH101:
        return _scan_caltech101(data_dir, download=False).info
    return _BUILT_IN[name]


def _check_split(info: DatasetInfo, split: str) -> None:
    if split not in info.splits:
        raise SemretError(f"dataset {info.name!r} has no split {split!r}; its splits: {', '.join(info.splits)}")


def load_dataset(
    name: str, split: str, data_dir: str | Path | None = None, download: bool = False, image_size: int = 224
) -> ImageSet:
    """The images of one split (``train``, ``test`` or ``all``: train then test) of a dataset.

    STL-10 also has ``unlabeled``: its 100,000 images without labels (label -1), for unsupervised
    training. ``data_dir``: where the files are (see docs/datasets.md for the defaults);
    ``download``: fetch Fashion-MNIST, CIFAR or STL-10 with torchvision when they are not there;
    ``image_size``: the side of the square a folder dataset's images are resized and centre-cropped
    to (the other datasets keep their native 28 x 28, 32 x 32 or 96 x 96).
    """
    _check_name(name)
    if name in FOLDER_DATASETS:
        if image_size < 1:
            raise SemretError(f"the image size must be a positive number of pixels, got {image_size}")
        scan = _scan_folder(data_dir) if name == FOLDER else _scan_caltech101(data_dir, download)
        return _load_folder(scan, split, image_size)
    info = _BUILT_IN[name]
    _check_split(info, split)
    if name == "fashion-mnist":
        return _load_fashion_mnist(split, data_dir, download)
    if name == "stl10":
        return _load_stl10(split, data_dir, download)
    return _load_cifar(_CIFAR[name], split, data_dir, download)


def split_per_class(images: ImageSet, share: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """(train, test): ``share`` of each class's images (at least one) held out as test images,
    drawn with ``seed``; for datasets without a test split of their own."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(images), dtype=bool)
    for label in np.unique(images.labels):
        members = np.flatnonzero(images.labels == label)
        held[rng.permutation(members)[: max(1, round(share * len(members)))]] = True
    return images.subset(np.flatnonzero(~held)), images.subset(np.flatnonzero(held))


def _parts(split: str) -> list[str]:
    return ["train", "test"] if split == "all" else [split]


def _join_splits(parts: list[ImageSet], split: str) -> ImageSet:
    if len(parts) == 1:
        return parts[0]
    return _concatenate(parts[0], parts[1], split)


def _check_labels(labels: npt.NDArray[Any], n_classes: int, source: str) -> npt.NDArray[np.int64]:
    labels = np.asarray(labels).astype(np.int64)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise SemretError(
            f"{source}: label {int(labels[position])} of image {position} is not a class index (0..{n_classes - 1})"
        )
    return labels


# --- Fashion-MNIST -------------------------------------------------------------------------------

FASHION_MNIST_TRAIN_SIZE = 60_000


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem``, whichever exists."""
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _fashion_folders(data_dir: str | Path | None) -> list[Path]:
    """Folders to look in, in order: the given one (and torchvision's layout under it), else the
    Debian package's and a previous torchvision download's."""
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / "FashionMNIST" / "raw"]
    return [SYSTEM_FASHION_MNIST_DIR, default_data_root() / "FashionMNIST" / "raw"]


def _locate_fashion_mnist(splits: list[str], data_dir: str | Path | None, download: bool) -> Path:
    """The folder holding the IDX files of ``splits``, downloading them if asked and needed."""
    needed = [stem for split in splits for stem in FASHION_MNIST_FILES[split]]
    folders = _fashion_folders(data_dir)
    for folder in folders:
        if all(_idx_file(folder, stem) for stem in needed):
            return folder
    if download:
        root = Path(data_dir) if data_dir is not None else default_data_root()
        _torchvision_download("FashionMNIST", root, "Fashion-MNIST")
        folder = root / "FashionMNIST" / "raw"
        missing = [stem for stem in needed if _idx_file(folder, stem) is None]
        if missing:
            raise SemretError(f"{folder}: the download left no {', '.join(missing)}")
        return folder
    every = [stem for stems in FASHION_MNIST_FILES.values() for stem in stems]
    for folder in folders:
        if any(_idx_file(folder, stem) for stem in every):
            missing = [f"{stem}.gz" for stem in needed if _idx_file(folder, stem) is None]
            raise SemretError(
                f"{folder} holds Fashion-MNIST files but not {', '.join(missing)} (nor un-gzipped), needed for "
                f"the {' and '.join(splits)} split{'s' if len(splits) > 1 else ''}; add the file(s) there, "
                "or pass --download to fetch the dataset"
            )
    looked = ", ".join(str(folder) for folder in folders)
    raise SemretError(
        f"Fashion-MNIST not found: looked for {needed[0]}.gz and the other IDX files in {looked}. "
        "Pass --data-dir DIR (a folder with the four original .gz files), install Debian's "
        f"dataset-fashion-mnist package, or pass --download to fetch it with torchvision into {default_data_root()}"
    )


def _read_fashion_split(folder: Path, split: str) -> ImageSet:
    image_stem, label_stem = FASHION_MNIST_FILES[split]
    image_file, label_file = _idx_file(folder, image_stem), _idx_file(folder, label_stem)
    assert image_file is not None and label_file is not None
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SemretError(f"{image_file}: expected (n, height, width) uint8 images, got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise SemretError(f"{label_file}: expected one label per image, got an array of shape {labels.shape}")
    if len(labels) != len(images):
        raise SemretError(f"{label_file} has {len(labels):,} labels but {image_file} has {len(images):,} images")
    if split == "train" and len(images) > FASHION_MNIST_TRAIN_SIZE:
        raise SemretError(
            f"{image_file}: {len(images):,} images, more than Fashion-MNIST's {FASHION_MNIST_TRAIN_SIZE:,}"
        )
    offset = 0 if split == "train" else FASHION_MNIST_TRAIN_SIZE
    source = str(image_file.resolve())
    return ImageSet(
        "fashion-mnist",
        split,
        np.arange(offset, offset + len(images), dtype=np.int64),
        images.astype(np.uint8, copy=False),
        _check_labels(labels, len(FASHION_MNIST_CLASSES), str(label_file)),
        list(FASHION_MNIST_CLASSES),
        [f"{source}#{i}" for i in range(len(images))],
    )


def _load_fashion_mnist(split: str, data_dir: str | Path | None, download: bool) -> ImageSet:
    folder = _locate_fashion_mnist(_parts(split), data_dir, download)
    return _join_splits([_read_fashion_split(folder, part) for part in _parts(split)], split)


# --- CIFAR ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CifarLayout:
    """The files of torchvision's CIFAR folder (the extracted python-pickle archive)."""

    name: str
    title: str
    torchvision_class: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    meta_key: str
    label_key: str
    classes: list[str]
    train_size: int = 50_000


_CIFAR = {
    "cifar10": _CifarLayout(
        "cifar10", "CIFAR-10", "CIFAR10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta", "label_names", "labels",
        CIFAR10_CLASSES,
    ),
    "cifar100": _CifarLayout(
        "cifar100", "CIFAR-100", "CIFAR100", "cifar-100-python", "cifar-100-python.tar.gz",
        ("train",), ("test",), "meta", "fine_label_names", "fine_labels", CIFAR100_CLASSES,
    ),
}  # fmt: skip

#: The only globals a CIFAR pickle may name: numpy's array reconstruction (no arbitrary code runs).
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR file never does")
        return super().find_class(module, name)


def _read_pickle(file: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with text keys (Python 2 pickles: latin-1, as torchvision reads them)."""
    try:
        with file.open("rb") as handle:
            loaded = _CifarUnpickler(handle, encoding="latin1").load()
    except OSError as exc:
        raise SemretError(f"cannot read {file}: {exc.strerror or exc}") from exc
    except Exception as exc:  # a corrupt pickle raises almost anything
        raise SemretError(f"{file}: not a CIFAR python-pickle file ({type(exc).__name__}: {exc})") from None
    if not isinstance(loaded, dict):
        raise SemretError(f"{file}: expected a pickled dict, got {type(loaded).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else str(key): value for key, value in loaded.items()}


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _cifar_files(layout: _CifarLayout, split: str) -> tuple[str, ...]:
    return layout.train_files if split == "train" else layout.test_files


def _read_cifar_batch(layout: _CifarLayout, file: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    entry = _read_pickle(file)
    for key in ("data", layout.label_key):
        if key not in entry:
            raise SemretError(f"{file}: no {key!r} entry (it has {', '.join(sorted(entry))})")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SemretError(f"{file}: 'data' must be (n, 3072) uint8 rows, got {data.dtype} {data.shape}")
    labels = np.asarray(entry[layout.label_key])
    if labels.shape != (len(data),):
        raise SemretError(f"{file}: {len(data):,} images but {labels.size:,} {layout.label_key}")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    checked = _check_labels(labels, len(layout.classes), str(file))
    if layout.name == "cifar100" and "coarse_labels" in entry:
        _check_coarse(np.asarray(entry["coarse_labels"]), checked, file)
    return images, checked


def _check_coarse(coarse: npt.NDArray[Any], fine: npt.NDArray[np.int64], file: Path) -> None:
    """Every image's coarse label must be its fine class's group in `CIFAR100_COARSE`."""
    group_of = {c: g for g, (_, members) in enumerate(CIFAR100_COARSE.items()) for c in members}
    expected = np.array([group_of[CIFAR100_CLASSES[f]] for f in fine], dtype=np.int64)
    if coarse.shape != fine.shape or not np.array_equal(coarse.astype(np.int64), expected):
        wrong = int(np.flatnonzero(coarse.astype(np.int64) != expected)[0]) if coarse.shape == fine.shape else 0
        raise SemretError(
            f"{file}: image {wrong}'s coarse label does not match its class "
            f"{CIFAR100_CLASSES[int(fine[wrong])]!r} (CIFAR-100's coarse classes are fixed)"
        )


def _read_cifar_split(layout: _CifarLayout, folder: Path, split: str) -> ImageSet:
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[npt.NDArray[np.int64]] = []
    sources: list[str] = []
    for name in _cifar_files(layout, split):
        file = folder / name
        batch_images, batch_labels = _read_cifar_batch(layout, file)
        images.append(batch_images)
        labels.append(batch_labels)
        sources += [f"{file.resolve()}#{i}" for i in range(len(batch_images))]
    n = len(sources)
    if split == "train" and n > layout.train_size:
        raise SemretError(f"{folder}: {n:,} training images, more than {layout.title}'s {layout.train_size:,}")
    offset = 0 if split == "train" else layout.train_size
    return ImageSet(
        layout.name,
        split,
        np.arange(offset, offset + n, dtype=np.int64),
        np.concatenate(images),
        np.concatenate(labels),
        list(layout.classes),
        sources,
    )


def _check_cifar_meta(layout: _CifarLayout, file: Path) -> None:
    """The meta file must list the classes semret knows (its hierarchy and vocabulary use them)."""
    entry = _read_pickle(file)
    if layout.meta_key not in entry:
        raise SemretError(f"{file}: no {layout.meta_key!r} entry (it has {', '.join(sorted(entry))})")
    names = [_text(name) for name in entry[layout.meta_key]]
    if names != layout.classes:
        raise SemretError(
            f"{file}: the class names ({len(names)}: {', '.join(names[:5])}...) are not {layout.title}'s "
            f"({len(layout.classes)}: {', '.join(layout.classes[:5])}...)"
        )


def _load_cifar(layout: _CifarLayout, split: str, data_dir: str | Path | None, download: bool) -> ImageSet:
    parts = _parts(split)
    needed = [layout.meta_file] + [name for part in parts for name in _cifar_files(layout, part)]
    folder = _archive_folder(
        data_dir, layout.folder, needed, download, layout.title, layout.archive,
        lambda root: _torchvision_download(layout.torchvision_class, root, layout.title),
    )  # fmt: skip
    _check_cifar_meta(layout, folder / layout.meta_file)
    return _join_splits([_read_cifar_split(layout, folder, part) for part in parts], split)


def _archive_folder(
    data_dir: str | Path | None,
    folder_name: str,
    needed: list[str],
    download: bool,
    title: str,
    archive: str,
    fetch: Callable[[Path], None],
    size: str = "",
) -> Path:
    """The folder of an extracted torchvision archive (``folder_name`` under ``data_dir`` or the
    default data root) once it holds the ``needed`` files: fetched with ``fetch(root)`` when they
    are missing and ``download`` is set, else an error naming what is missing and how to get it."""
    root = Path(data_dir) if data_dir is not None else default_data_root()
    folder = root / folder_name
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing and download:
        fetch(root)
        missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise SemretError(
            f"{title} not found in {folder}: no {', '.join(missing)}. Pass --download to fetch it with torchvision "
            f"into {root}{size}, or extract {archive} so that {folder_name}/ sits in the folder given with --data-dir"
        )
    return folder


def _torchvision_download(class_name: str, root: Path, title: str, split: str | None = None) -> None:
    """Let torchvision download (and check, and extract) a dataset into ``root``."""
    from torchvision import datasets  # slow to import: only when downloading

    root.mkdir(parents=True, exist_ok=True)
    try:
        # the test split: torchvision downloads every file but then reads only the smaller split
        chosen = {"train": False} if split is None else {"split": split}
        getattr(datasets, class_name)(root=str(root), download=True, **chosen)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SemretError(f"downloading {title} with torchvision into {root} failed: {exc}") from exc


# --- STL-10 --------------------------------------------------------------------------------------

#: torchvision's STL-10 folder (the extracted binary archive) and its files per split.
STL10_FOLDER = "stl10_binary"
STL10_ARCHIVE = "stl10_binary.tar.gz"
STL10_FILES = {
    "train": ("train_X.bin", "train_y.bin"),
    "test": ("test_X.bin", "test_y.bin"),
    UNLABELED: ("unlabeled_X.bin", None),
}
#: Each split's first id (train, then test, then the unlabelled images) and official size.
STL10_OFFSETS = {"train": 0, "test": 5_000, UNLABELED: 13_000}
STL10_SIZES = {"train": 5_000, "test": 8_000, UNLABELED: 100_000}
STL10_SIDE = 96


def _stl10_images(file: Path) -> npt.NDArray[np.uint8]:
    """A ``*_X.bin`` file as (n, 96, 96, 3) RGB, memory-mapped (the unlabelled file is 2.7 GB).

    The file holds each image as 3 x 96 x 96 bytes, each channel column-major (torchvision reads
    it as (n, 3, 96, 96) and swaps the last two axes), so (n, 3, W, H) -> (n, H, W, 3)."""
    image_bytes = 3 * STL10_SIDE * STL10_SIDE
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise SemretError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if size == 0 or size % image_bytes:
        raise SemretError(
            f"{file}: {size:,} bytes is not a whole number of STL-10 images ({image_bytes:,} bytes each): "
            "a truncated or foreign file"
        )
    raw = np.memmap(file, dtype=np.uint8, mode="r", shape=(size // image_bytes, 3, STL10_SIDE, STL10_SIDE))
    return raw.transpose(0, 3, 2, 1)


def _stl10_labels(file: Path, n: int) -> npt.NDArray[np.int64]:
    """A ``*_y.bin`` file: one byte per image, classes numbered 1..10, as 0..9."""
    try:
        raw = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise SemretError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if len(raw) != n:
        raise SemretError(f"{file}: {len(raw):,} labels for {n:,} images")
    if len(raw) and (raw.min() < 1 or raw.max() > len(STL10_CLASSES)):
        position = int(np.flatnonzero((raw < 1) | (raw > len(STL10_CLASSES)))[0])
        raise SemretError(f"{file}: label {int(raw[position])} of image {position} is not a class (1..10)")
    return raw.astype(np.int64) - 1


def _check_stl10_classes(file: Path) -> None:
    """``class_names.txt``, where present, must list STL-10's classes in order."""
    if not file.is_file():
        return
    names = [line.strip() for line in file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if names != STL10_CLASSES:
        raise SemretError(
            f"{file}: the class names ({', '.join(names[:5])}...) are not STL-10's ({', '.join(STL10_CLASSES)})"
        )


def _read_stl10_split(folder: Path, split: str) -> ImageSet:
    images_name, labels_name = STL10_FILES[split]
    images_file = folder / images_name
    images = _stl10_images(images_file)
    n = len(images)
    if n > STL10_SIZES[split]:
        raise SemretError(f"{images_file}: {n:,} images, more than STL-10's {STL10_SIZES[split]:,} in {split}")
    labels = np.full(n, NO_LABEL, dtype=np.int64) if labels_name is None else _stl10_labels(folder / labels_name, n)
    source = str(images_file.resolve())
    offset = STL10_OFFSETS[split]
    return ImageSet(
        "stl10",
        split,
        np.arange(offset, offset + n, dtype=np.int64),
        images if split == UNLABELED else np.ascontiguousarray(images),  # 2.7 GB unlabelled: mapped, not read
        labels,
        list(STL10_CLASSES),
        [f"{source}#{i}" for i in range(n)],
    )


def _load_stl10(split: str, data_dir: str | Path | None, download: bool) -> ImageSet:
    parts = [UNLABELED] if split == UNLABELED else _parts(split)
    needed = [name for part in parts for name in STL10_FILES[part] if name is not None]
    folder = _archive_folder(
        data_dir, STL10_FOLDER, needed, download, "STL-10", STL10_ARCHIVE,
        lambda root: _torchvision_download("STL10", root, "STL-10", split="test"), size=" (2.6 GB)",
    )  # fmt: skip
    _check_stl10_classes(folder / "class_names.txt")
    return _join_splits([_read_stl10_split(folder, part) for part in parts], split)


# --- folders of images per class -----------------------------------------------------------------


@dataclass(frozen=True)
class _FolderScan:
    """A folder dataset's layout: its info and every image file with its split and class."""

    info: DatasetInfo
    root: Path
    files: list[tuple[str, str, Path]]  # (split, class, path), in id order


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth, hidden ones left out), sorted by path."""
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _scan_caltech101(data_dir: str | Path | None, download: bool) -> _FolderScan:
    """Caltech-101's class folders: ``<data_dir>/caltech101/101_ObjectCategories`` (torchvision's
    layout), ``<data_dir>/101_ObjectCategories`` or ``<data_dir>`` itself when it holds the class
    folders; without ``data_dir`` the default data root's. ``download`` lets torchvision fetch it."""
    root = Path(data_dir) if data_dir is not None else default_data_root()
    for folder in (root / CALTECH101_FOLDER, root / CALTECH101_FOLDER.name, root):
        if folder.is_dir() and any(d.name not in CALTECH101_EXCLUDED for d in _visible_dirs(folder)):
            if folder == root and (data_dir is None or (root / CALTECH101_FOLDER.parent).exists()):
                continue  # the root itself only when it holds the class folders, given explicitly
            return _scan_folder(folder, name=CALTECH101, exclude=CALTECH101_EXCLUDED)
    if download:
        _download_caltech101(root)
        return _scan_folder(root / CALTECH101_FOLDER, name=CALTECH101, exclude=CALTECH101_EXCLUDED)
    raise SemretError(
        f"Caltech-101 not found in {root}: no {CALTECH101_FOLDER}/ with a folder per class. Pass --download to "
        f"fetch it with torchvision into {root} (about 130 MB), or extract 101_ObjectCategories.tar.gz there"
    )


def _download_caltech101(root: Path) -> None:
    """torchvision's Caltech-101 download (and extraction) into ``root/caltech101``."""
    from torchvision import datasets  # slow to import: only when downloading

    root.mkdir(parents=True, exist_ok=True)
    try:
        datasets.Caltech101(root=str(root), target_type="category", download=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SemretError(f"downloading Caltech-101 with torchvision into {root} failed: {exc}") from exc


def _scan_folder(data_dir: str | Path | None, name: str = FOLDER, exclude: frozenset[str] = frozenset()) -> _FolderScan:
    """Find the classes and image files of ``root/<class>/`` or ``root/{train,test}/<class>/``
    (class folders named in ``exclude`` left out); ``name`` names the dataset."""
    if data_dir is None:
        raise SemretError("the folder dataset needs --data-dir: a folder with one sub-folder of images per class")
    root = Path(data_dir)
    if not root.is_dir():
        raise SemretError(f"{root}: no such folder (the folder dataset needs one sub-folder of images per class)")
    top = _visible_dirs(root)
    if not top:
        raise SemretError(
            f"{root} has no sub-folders: put each class's images in root/<class>/ (or root/train/<class>/ and "
            "root/test/<class>/)"
        )
    split_layout = {d.name for d in top} <= {"train", "test"}
    split_dirs = {d.name: d for d in top} if split_layout else {"all": root}
    splits = (*(s for s in ("train", "test") if s in split_dirs), "all") if split_layout else ("all",)
    files: list[tuple[str, str, Path]] = []
    classes: set[str] = set()
    for split, folder in split_dirs.items():
        class_dirs = [d for d in _visible_dirs(folder) if d.name not in exclude]
        if not class_dirs:
            raise SemretError(f"{folder} has no class sub-folders")
        for class_dir in class_dirs:
            images = _image_files(class_dir)
            if not images:
                kinds = ", ".join(sorted(IMAGE_SUFFIXES))
                raise SemretError(f"{class_dir}: class {class_dir.name!r} has no image files ({kinds})")
            classes.add(class_dir.name)
            files += [(split, class_dir.name, path) for path in images]
    files.sort(key=lambda item: item[2].relative_to(root).as_posix())
    hierarchy_file = root / FOLDER_HIERARCHY_FILE
    aliases_file = root / FOLDER_ALIASES_FILE
    info = DatasetInfo(
        name,
        sorted(classes),
        None,
        None,
        splits,
        hierarchy_file if hierarchy_file.is_file() else None,
        aliases_file if aliases_file.is_file() else None,
    )
    return _FolderScan(info, root, files)


def read_image_file(path: Path, size: int) -> npt.NDArray[np.uint8]:
    """An image file as (size, size, 3) uint8 RGB: the shorter side resized to ``size``, then the
    centre cropped (the usual evaluation transform of ImageNet-trained networks)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise SemretError(f"{path}: cannot read the image ({exc})") from None
    width, height = picture.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new_size != picture.size:
        picture = picture.resize(new_size, Image.Resampling.BILINEAR)
    left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
    picture = picture.crop((left, top, left + size, top + size))
    return np.asarray(picture, dtype=np.uint8)


@contextmanager
def _reading_progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on standard error for reading many files; nothing for a few or off a terminal."""
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("reading images", total=total)
        yield lambda: progress.advance(task)


def _load_folder(scan: _FolderScan, split: str, image_size: int) -> ImageSet:
    _check_split(scan.info, split)
    class_of = {name: i for i, name in enumerate(scan.info.class_names)}
    numbered = list(enumerate(scan.files))
    chosen: Sequence[tuple[int, tuple[str, str, Path]]]
    if split == "all":
        order = {"train": 0, "test": 1, "all": 0}
        chosen = sorted(numbered, key=lambda item: order[item[1][0]])  # stable: train, then test
    else:
        chosen = [item for item in numbered if item[1][0] == split]
    images = np.empty((len(chosen), image_size, image_size, 3), dtype=np.uint8)
    with _reading_progress(len(chosen)) as advance:
        for row, (_, (_, _, path)) in enumerate(chosen):
            images[row] = read_image_file(path, image_size)
            advance()
    return ImageSet(
        scan.info.name,
        split,
        np.array([image_id for image_id, _ in chosen], dtype=np.int64),
        images,
        np.array([class_of[name] for _, (_, name, _) in chosen], dtype=np.int64),
        list(scan.info.class_names),
        [str(path.resolve()) for _, (_, _, path) in chosen],
        [image_split for _, (image_split, _, _) in chosen],
    )


# --- images back from their recorded sources -----------------------------------------------------


def _split_source(source: str) -> tuple[Path, int]:
    """``"/path/file#12"`` -> (Path("/path/file"), 12)."""
    path, separator, position = source.rpartition("#")
    if not separator or not position.isdigit():
        raise SemretError(f"image source {source!r} is not FILE#POSITION")
    return Path(path), int(position)


def _read_positions(
    sources: Sequence[str],
    read_file: Callable[[Path], npt.NDArray[np.uint8]],
    arrays: MutableMapping[Path, npt.NDArray[np.uint8]] | None = None,
) -> npt.NDArray[np.uint8]:
    """The images at ``FILE#POSITION`` sources, each file read once (or found in ``arrays``, a
    cache of files already read that this fills), in the order of ``sources``."""
    located = [_split_source(source) for source in sources]
    cache: MutableMapping[Path, npt.NDArray[np.uint8]] = {} if arrays is None else arrays
    read: dict[Path, npt.NDArray[np.uint8]] = {}  # this call's files: a small cache may drop some meanwhile
    for file, _ in located:
        if file in read:
            continue
        found = cache.get(file)
        if found is None:
            if not file.is_file():
                raise SemretError(
                    f"{file}: no such file, but the collection's images come from it (moved or deleted?): "
                    "put it back, or import the dataset again into a new collection"
                )
            found = read_file(file)
            cache[file] = found
        read[file] = found
    rows = []
    for (file, position), source in zip(located, sources, strict=True):
        if position >= len(read[file]):
            raise SemretError(f"image source {source}: {file} holds only {len(read[file]):,} images")
        rows.append(read[file][position])
    return np.stack(rows) if rows else np.empty((0, 0, 0), dtype=np.uint8)


def read_image_sources(
    dataset: str,
    sources: Sequence[str],
    image_size: int = 224,
    file_cache: MutableMapping[Path, npt.NDArray[np.uint8]] | None = None,
) -> npt.NDArray[np.uint8]:
    """The pixels of images from the sources `load_dataset` records (``ImageSet.sources``): a
    Fashion-MNIST IDX file and position, a CIFAR batch file and position, or (folder) an image
    file, resized and centre-cropped to ``image_size`` as `load_dataset` does. ``file_cache`` keeps
    the dataset files read (IDX, CIFAR, STL-10) for the next call."""
    _check_name(dataset)
    if dataset in FOLDER_DATASETS:
        if image_size < 1:
            raise SemretError(f"the image size must be a positive number of pixels, got {image_size}")
        images = np.empty((len(sources), image_size, image_size, 3), dtype=np.uint8)
        with _reading_progress(len(sources)) as advance:
            for row, source in enumerate(sources):
                if not Path(source).is_file():
                    raise SemretError(f"{source}: no such image file (moved or deleted?)")
                images[row] = read_image_file(Path(source), image_size)
                advance()
        return images
    if dataset == "fashion-mnist":
        return _read_positions(sources, lambda file: read_idx(file).astype(np.uint8, copy=False), file_cache)
    if dataset == "stl10":
        return _read_positions(sources, _stl10_images, file_cache)
    layout = _CIFAR[dataset]
    return _read_positions(sources, lambda file: _read_cifar_batch(layout, file)[0], file_cache)
