"""Dataset loaders on tiny fixtures built in tmp_path: Fashion-MNIST IDX files, fake CIFAR-10/100
pickle folders, folders of PNGs; and on the real Fashion-MNIST when ../shared/data has it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from semret.errors import SemretError
from semret.vision import datasets
from semret.vision.datasets import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    FASHION_MNIST_CLASSES,
    ImageSet,
    dataset_info,
    dataset_names,
    load_dataset,
)
from semret.vision.idx import write_idx

from helpers import FASHION_MNIST_LABELS

SHARED_FASHION_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"


def write_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
    """Tiny Fashion-MNIST IDX files: image i of a split is filled with i (train) or 100 + i (test)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, base in (("train", n_train, 0), ("t10k", n_test, 100)):
        if n == 0:
            continue
        images = np.repeat((base + np.arange(n, dtype=np.uint8))[:, None, None], 28 * 28).reshape(n, 28, 28)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    write_fashion_mnist(tmp_path / "fashion")
    return tmp_path / "fashion"


# --- the registry ----------------------------------------------------------------------------------


def test_names_and_infos(tmp_path: Path) -> None:
    assert dataset_names() == ["caltech101", "cifar10", "cifar100", "fashion-mnist", "folder", "stl10"]
    fashion = dataset_info("fashion-mnist")
    assert fashion.class_names == FASHION_MNIST_LABELS == FASHION_MNIST_CLASSES
    assert (fashion.hierarchy, fashion.vocabulary, fashion.splits) == (
        "fashion-mnist",
        "fashion-mnist",
        ("train", "test", "all"),
    )
    assert dataset_info("cifar10").class_names == CIFAR10_CLASSES
    assert len(CIFAR100_CLASSES) == 100 and CIFAR100_CLASSES[1] == "aquarium_fish"
    for name in ("cifar10", "cifar100", "fashion-mnist", "stl10"):
        info = dataset_info(name)
        hierarchy = info.class_hierarchy()
        assert hierarchy.require_classes(info.class_names)  # every class is a node
        assert isinstance(info.aliases(), dict)
    assert dataset_info("cifar10").class_hierarchy().similarity("cat", "dog") == pytest.approx(2 / 3)
    assert dataset_info("fashion-mnist").aliases()


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(
        SemretError,
        match=r"unknown dataset 'mnist'; known datasets: caltech101, cifar10, cifar100, fashion-mnist, folder, stl10",
    ):
        load_dataset("mnist", "test")
    with pytest.raises(SemretError, match=r"unknown dataset"):
        dataset_info("imagenet")
    with pytest.raises(SemretError, match=r"dataset 'fashion-mnist' has no split 'val'; its splits: train, test, all"):
        load_dataset("fashion-mnist", "val")


# --- Fashion-MNIST ---------------------------------------------------------------------------------


def test_fashion_mnist_splits_ids_labels_sources(fashion_dir: Path) -> None:
    test = load_dataset("fashion-mnist", "test", fashion_dir)
    assert (test.dataset, test.split, len(test)) == ("fashion-mnist", "test", 10)
    assert test.image_ids.tolist() == list(range(60_000, 60_010))
    assert test.images.shape == (10, 28, 28) and test.images.dtype == np.uint8
    assert test.images[3].min() == test.images[3].max() == 103
    assert test.labels.dtype == np.int64 and test.labels.tolist() == list(range(10))
    assert test.label_names()[:2] == ["T-shirt/top", "Trouser"]
    assert test.sources[7] == f"{(fashion_dir / 't10k-images-idx3-ubyte.gz').resolve()}#7"
    assert test.image_splits == ["test"] * 10

    train = load_dataset("fashion-mnist", "train", fashion_dir)
    assert train.image_ids.tolist() == list(range(20)) and train.labels[15] == 5
    every = load_dataset("fashion-mnist", "all", fashion_dir)
    assert every.split == "all" and len(every) == 30
    assert every.image_ids.tolist() == list(range(20)) + list(range(60_000, 60_010))
    assert every.image_splits == ["train"] * 20 + ["test"] * 10
    assert every.sources[20] == test.sources[0]
    np.testing.assert_array_equal(every.images[20:], test.images)


def test_un_gzipped_files_and_torchvision_layout(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "plain", gz=False)
    assert len(load_dataset("fashion-mnist", "all", tmp_path / "plain")) == 30
    write_fashion_mnist(tmp_path / "root" / "FashionMNIST" / "raw", n_train=0)
    assert len(load_dataset("fashion-mnist", "test", tmp_path / "root")) == 10


def test_a_missing_split_file_is_named(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "sample", n_train=0)
    assert len(load_dataset("fashion-mnist", "test", tmp_path / "sample")) == 10
    with pytest.raises(
        SemretError, match=r"not train-images-idx3-ubyte\.gz, train-labels-idx1-ubyte\.gz .*train split"
    ):
        load_dataset("fashion-mnist", "train", tmp_path / "sample")
    with pytest.raises(SemretError, match=r"train and test splits"):
        load_dataset("fashion-mnist", "all", tmp_path / "sample")


def test_nothing_found_names_every_place_and_the_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "usr-share")
    with pytest.raises(SemretError) as raised:
        load_dataset("fashion-mnist", "test")
    message = str(raised.value)
    assert (
        str(tmp_path / "usr-share") in message and str(datasets.default_data_root() / "FashionMNIST" / "raw") in message
    )
    assert "--data-dir" in message and "--download" in message
    with pytest.raises(SemretError, match=r"looked for .* in .*empty"):
        load_dataset("fashion-mnist", "test", tmp_path / "empty")

    write_fashion_mnist(tmp_path / "usr-share", n_train=0)  # Debian's package, when installed
    assert len(load_dataset("fashion-mnist", "test")) == 10


def test_mismatched_labels_are_errors(fashion_dir: Path) -> None:
    write_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8))
    with pytest.raises(SemretError, match=r"t10k-labels-idx1-ubyte\.gz has 9 labels but .* has 10 images"):
        load_dataset("fashion-mnist", "test", fashion_dir)
    write_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz", np.full(10, 10, dtype=np.uint8))
    with pytest.raises(SemretError, match=r"label 10 of image 0 is not a class index \(0\.\.9\)"):
        load_dataset("fashion-mnist", "test", fashion_dir)


class _FakeTorchvision:
    """Stands in for torchvision.datasets.FashionMNIST: 'downloads' tiny files, or fails."""

    fail = False

    def __init__(self, root: str, train: bool, download: bool) -> None:
        assert download and not train
        if self.fail:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")
        write_fashion_mnist(Path(root) / "FashionMNIST" / "raw")


@pytest.mark.parametrize("fail", [False, True])
def test_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    import torchvision.datasets

    monkeypatch.setattr(datasets, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "none")
    monkeypatch.setattr(_FakeTorchvision, "fail", fail)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", _FakeTorchvision)
    if fail:
        with pytest.raises(
            SemretError, match=r"downloading Fashion-MNIST with torchvision into .* failed: .*no network"
        ):
            load_dataset("fashion-mnist", "test", download=True)
        return
    loaded = load_dataset("fashion-mnist", "test", download=True)
    assert len(loaded) == 10 and str(datasets.default_data_root()) in loaded.sources[0]
    assert len(load_dataset("fashion-mnist", "train")) == 20  # found in the cache without --download


# --- ImageSet ----------------------------------------------------------------------------------------


def test_subset_and_fingerprint(fashion_dir: Path) -> None:
    every = load_dataset("fashion-mnist", "all", fashion_dir)
    part = every.subset([25, 3])
    assert part.image_ids.tolist() == [60_005, 3] and part.labels.tolist() == [5, 3]
    assert part.sources == [every.sources[25], every.sources[3]] and part.image_splits == ["test", "train"]
    assert part.images[0].max() == 105

    fingerprint = every.fingerprint()
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert load_dataset("fashion-mnist", "all", fashion_dir).fingerprint() == fingerprint
    assert every.subset(range(len(every))).fingerprint() == fingerprint
    assert part.fingerprint() != fingerprint
    changed = every.subset(range(len(every)))
    changed.images[0, 0, 0] ^= 1
    assert changed.fingerprint() != fingerprint
    relabelled = every.subset(range(len(every)))
    relabelled.labels[0] = 9
    assert relabelled.fingerprint() != fingerprint


def test_image_set_rows_must_agree() -> None:
    with pytest.raises(ValueError, match="2 image ids, 1 images"):
        ImageSet("x", "all", np.arange(2), np.zeros((1, 2, 2), np.uint8), np.zeros(2, np.int64), ["a"], ["s", "t"])


# --- CIFAR -------------------------------------------------------------------------------------------


def _batch(n: int, first_value: int, label_key: Any, labels: list[int], text: Any = str) -> dict[Any, Any]:
    data = np.zeros((n, 3 * 32 * 32), dtype=np.uint8)
    data[:, :1024] = (first_value + np.arange(n))[:, None]  # red plane
    data[:, 1024:2048] = 7  # green plane
    return {text("batch_label"): b"fake", text("data"): data, text(label_key): labels}


def write_cifar10(root: Path, per_batch: int = 2, n_test: int = 3) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = _batch(per_batch, 10 * i, "labels", [(i + j) % 10 for j in range(per_batch)])
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(_batch(n_test, 200, "labels", [9, 8, 7][:n_test])))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_CLASSES, "num_vis": 3072}))
    return folder


def write_cifar100(root: Path) -> Path:
    """Keys as bytes, as CIFAR-100's files give them to ``pickle.load(..., encoding="bytes")``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train = _batch(4, 0, "fine_labels", [0, 1, 99, 30], text=str.encode)
    train[b"coarse_labels"] = [4, 1, 13, 0]
    (folder / "train").write_bytes(pickle.dumps(train))
    (folder / "test").write_bytes(pickle.dumps(_batch(2, 50, "fine_labels", [1, 2], text=str.encode)))
    meta = {b"fine_label_names": [c.encode() for c in CIFAR100_CLASSES], b"coarse_label_names": [b"x"] * 20}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return folder


def test_cifar10_from_a_local_folder(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", tmp_path)
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.image_ids.tolist() == list(range(10))
    assert train.labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert train.images[2, 5, 5].tolist() == [20, 7, 0]  # HWC: red, green, blue
    assert train.sources[3] == f"{(folder / 'data_batch_2').resolve()}#1"
    test = load_dataset("cifar10", "test", tmp_path)
    assert test.image_ids.tolist() == [50_000, 50_001, 50_002] and test.label_names() == ["truck", "ship", "horse"]
    every = load_dataset("cifar10", "all", tmp_path)
    assert len(every) == 13 and every.image_ids[-1] == 50_002 and every.class_names == CIFAR10_CLASSES


def test_cifar10_sources_from_six_files_read_back_through_a_cache_of_fewer(tmp_path: Path) -> None:
    from semret.app.pixels import _LruFiles

    write_cifar10(tmp_path)
    every = load_dataset("cifar10", "all", tmp_path)
    cache = _LruFiles(2)  # as `semret serve` keeps a few decoded files: fewer than one read needs
    order = list(range(len(every)))[::-1]
    images = datasets.read_image_sources("cifar10", [every.sources[i] for i in order], 32, cache)
    np.testing.assert_array_equal(images, every.images[order])
    assert len(cache) == 2
    again = datasets.read_image_sources("cifar10", [every.sources[0], every.sources[-1]], 32, cache)
    np.testing.assert_array_equal(again, every.images[[0, -1]])


def test_cifar100_from_a_local_folder(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    train = load_dataset("cifar100", "train", tmp_path)
    assert train.label_names() == ["apple", "aquarium_fish", "worm", "dolphin"]
    assert load_dataset("cifar100", "test", tmp_path).image_ids.tolist() == [50_000, 50_001]
    info = dataset_info("cifar100")
    assert (info.hierarchy, info.vocabulary) == ("cifar100", "cifar100")


def test_cifar_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(
        SemretError, match=r"CIFAR-10 not found in .*cifar-10-batches-py: no batches\.meta, data_batch_1.*--download"
    ):
        load_dataset("cifar10", "all", tmp_path)
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    assert len(load_dataset("cifar10", "test", tmp_path)) == 3  # the test split needs no train batch
    with pytest.raises(SemretError, match=r"no data_batch_3\."):
        load_dataset("cifar10", "train", tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(SemretError, match=r"test_batch: not a CIFAR python-pickle file"):
        load_dataset("cifar10", "test", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]}))
    with pytest.raises(SemretError, match=r"test_batch: 'data' must be \(n, 3072\) uint8 rows"):
        load_dataset("cifar10", "test", tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b"]}))
    with pytest.raises(SemretError, match=r"batches\.meta: the class names \(2: a, b\.\.\.\) are not CIFAR-10's"):
        load_dataset("cifar10", "test", tmp_path)


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(SemretError, match=r"it refers to builtins\.print"):
        load_dataset("cifar10", "test", tmp_path)


# --- folders of images ---------------------------------------------------------------------------------


def write_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).convert(mode).save(path)


def test_folder_per_class(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_png(root / "dog" / "b.png", (8, 8), (0, 0, 255))
    write_png(root / "cat" / "z.PNG", (16, 8), (255, 0, 0))
    write_png(root / "cat" / "a.jpg", (8, 8), (0, 255, 0), mode="L")
    (root / "cat" / "notes.txt").write_text("not an image")
    write_png(root / "cat" / ".hidden.png", (8, 8), (1, 1, 1))

    info = dataset_info("folder", root)
    assert (info.class_names, info.splits, info.hierarchy, info.vocabulary) == (["cat", "dog"], ("all",), None, None)
    flat = info.class_hierarchy()
    assert flat.max_height == 1 and flat.similarity("cat", "dog") == 0.0 and info.aliases() == {}

    pets = load_dataset("folder", "all", root, image_size=4)
    assert pets.image_ids.tolist() == [0, 1, 2] and pets.label_names() == ["cat", "cat", "dog"]
    assert pets.sources == [str((root / p).resolve()) for p in ("cat/a.jpg", "cat/z.PNG", "dog/b.png")]
    assert pets.images.shape == (3, 4, 4, 3) and pets.images.dtype == np.uint8
    assert pets.images[1, 2, 2].tolist() == [255, 0, 0] and pets.images[2, 0, 0].tolist() == [0, 0, 255]
    assert pets.images[0, 0, 0, 0] == pets.images[0, 0, 0, 1] == pets.images[0, 0, 0, 2]  # grey made RGB
    with pytest.raises(SemretError, match=r"dataset 'folder' has no split 'test'; its splits: all"):
        load_dataset("folder", "test", root)


def test_folder_resize_keeps_the_centre(tmp_path: Path) -> None:
    picture = Image.new("RGB", (30, 10), (255, 0, 0))
    picture.paste((0, 0, 255), (10, 0, 20, 10))  # blue middle third
    (tmp_path / "wide" / "a").mkdir(parents=True)
    picture.save(tmp_path / "wide" / "a" / "x.png")
    image = load_dataset("folder", "all", tmp_path / "wide", image_size=5).images[0]
    assert image.shape == (5, 5, 3) and (image[:, 1:4] == [0, 0, 255]).all()


def test_folder_with_train_and_test_hierarchy_and_words(tmp_path: Path) -> None:
    root = tmp_path / "caltech"
    write_png(root / "train" / "ant" / "1.png", (4, 4), (1, 2, 3))
    write_png(root / "train" / "bee" / "2.png", (4, 4), (1, 2, 3))
    write_png(root / "test" / "ant" / "3.bmp", (4, 4), (1, 2, 3))
    write_png(root / "test" / "wasp" / "4.gif", (4, 4), (1, 2, 3))
    (root / "hierarchy.json").write_text(json.dumps({"insect": {"ant": [], "stinging": ["bee", "wasp"]}}))
    (root / "words.aliases").write_text("wasp: BEE\n")

    info = dataset_info("folder", root)
    assert info.class_names == ["ant", "bee", "wasp"] and info.splits == ("train", "test", "all")
    assert info.hierarchy_file == root / "hierarchy.json"
    assert info.class_hierarchy().similarity("bee", "wasp") == pytest.approx(0.5)
    assert info.aliases() == {"wasp": ["BEE"]}

    # ids: positions in the sorted paths test/ant/3.bmp, test/wasp/4.gif, train/ant/1.png, train/bee/2.png
    train = load_dataset("folder", "train", root, image_size=2)
    assert train.image_ids.tolist() == [2, 3] and train.label_names() == ["ant", "bee"]
    test = load_dataset("folder", "test", root, image_size=2)
    assert test.image_ids.tolist() == [0, 1] and test.label_names() == ["ant", "wasp"]
    every = load_dataset("folder", "all", root, image_size=2)
    assert every.image_ids.tolist() == [2, 3, 0, 1] and every.image_splits == ["train", "train", "test", "test"]

    (root / "hierarchy.json").write_text(json.dumps({"insect": ["ant", "bee"]}))
    with pytest.raises(SemretError, match=r"hierarchy\.json: 1 of 3 classes are not in the hierarchy: 'wasp'"):
        dataset_info("folder", root).class_hierarchy()


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match="the folder dataset needs --data-dir"):
        load_dataset("folder", "all")
    with pytest.raises(SemretError, match="no such folder"):
        dataset_info("folder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemretError, match="has no sub-folders"):
        load_dataset("folder", "all", tmp_path / "empty")
    (tmp_path / "split" / "train").mkdir(parents=True)
    with pytest.raises(SemretError, match=r"train has no class sub-folders"):
        load_dataset("folder", "all", tmp_path / "split")
    write_png(tmp_path / "mixed" / "cat" / "a.png", (4, 4), (0, 0, 0))
    (tmp_path / "mixed" / "dog").mkdir()
    (tmp_path / "mixed" / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(SemretError, match=r"dog: class 'dog' has no image files \(\.bmp"):
        load_dataset("folder", "all", tmp_path / "mixed")
    (tmp_path / "mixed" / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SemretError, match=r"broken\.jpg: cannot read the image"):
        load_dataset("folder", "all", tmp_path / "mixed")
    with pytest.raises(SemretError, match="positive number of pixels"):
        load_dataset("folder", "all", tmp_path / "mixed", image_size=0)


# --- the real data ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_FASHION_MNIST.is_dir(), reason=f"{SHARED_FASHION_MNIST} is not available")
def test_real_fashion_mnist_test_split() -> None:
    test = load_dataset("fashion-mnist", "test", SHARED_FASHION_MNIST)
    assert len(test) == 10_000 and test.images.shape == (10_000, 28, 28)
    assert test.image_ids[0] == 60_000 and test.image_ids[-1] == 69_999
    assert np.bincount(test.labels, minlength=10).tolist() == [1_000] * 10


def test_cifar100_coarse_classes_are_its_twenty_groups_of_five() -> None:
    from semret.vision.datasets import CIFAR100_COARSE

    assert len(CIFAR100_COARSE) == 20 and all(len(members) == 5 for members in CIFAR100_COARSE.values())
    assert sorted(c for members in CIFAR100_COARSE.values() for c in members) == sorted(CIFAR100_CLASSES)
    meta = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar100-hierarchy" / "cifar100-meta.pickle"
    if meta.is_file():  # the real meta file (beside the checkout in CI): the same coarse names, in order
        names = pickle.loads(meta.read_bytes(), encoding="bytes")[b"coarse_label_names"]
        assert [n.decode() for n in names] == list(CIFAR100_COARSE)


def test_a_cifar100_coarse_label_that_contradicts_its_class_is_refused(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path)
    train = pickle.loads((folder / "train").read_bytes())
    train[b"coarse_labels"] = [4, 1, 13, 5]  # dolphin is an aquatic mammal (0), not a household device
    (folder / "train").write_bytes(pickle.dumps(train))
    with pytest.raises(SemretError, match=r"train: image 3's coarse label does not match its class 'dolphin'"):
        load_dataset("cifar100", "train", tmp_path)


def test_seed_002_iwan_grades_by_cifar100_coarse_classes_elsewhere_by_the_hierarchy() -> None:
    from semret.app.eval_pipeline import class_parents

    info = dataset_info("cifar100")
    parents = class_parents(info, info.class_hierarchy())
    index = {name: i for i, name in enumerate(CIFAR100_CLASSES)}
    assert parents[index["apple"]] == parents[index["orange"]] == parents[index["sweet_pepper"]]
    assert parents[index["apple"]] != parents[index["bowl"]]
    assert len(set(parents.tolist())) == 20
    fashion = dataset_info("fashion-mnist")
    hierarchy = fashion.class_hierarchy()
    assert class_parents(fashion, hierarchy).tolist() == [
        hierarchy.parent(node) for node in hierarchy.require_classes(fashion.class_names)
    ]
