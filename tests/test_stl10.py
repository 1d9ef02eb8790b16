"""The STL-10 loader on small fake files in torchvision's binary format (``stl10_binary/``),
checked against torchvision's own reader of the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from semret.errors import SemretError
from semret.vision.datasets import (
    NO_LABEL,
    STL10_CLASSES,
    dataset_info,
    dataset_names,
    load_dataset,
    read_image_sources,
)

SIDE = 96


def stl_bytes(images: npt.NDArray[np.uint8]) -> bytes:
    """(n, H, W, 3) images as STL-10 stores them: per image 3 x 96 x 96, each channel column-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def fake_images(n: int, seed: int) -> npt.NDArray[np.uint8]:
    """Random images whose rows, columns and channels all differ (an axis swap would show)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, SIDE, SIDE, 3), dtype=np.uint8)


def write_stl10(root: Path, n_train: int = 4, n_test: int = 3, n_unlabeled: int = 2) -> Path:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        (folder / f"{split}_X.bin").write_bytes(stl_bytes(fake_images(n, seed)))
        (folder / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(stl_bytes(fake_images(n_unlabeled, 3)))
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    return folder


def test_stl10_is_a_known_dataset_with_its_classes() -> None:
    assert "stl10" in dataset_names()
    info = dataset_info("stl10")
    assert info.class_names == STL10_CLASSES
    assert info.splits == ("train", "test", "all", "unlabeled")
    hierarchy = info.class_hierarchy()
    assert hierarchy.similarity("cat", "monkey") == pytest.approx(2 / 3)
    assert hierarchy.similarity("car", "ship") == pytest.approx(1 / 3)
    assert hierarchy.similarity("car", "dog") == 0
    assert info.aliases() == {}  # every label is a norm word itself


def test_splits_ids_labels_and_pixels(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    train = load_dataset("stl10", "train", tmp_path)
    assert train.images.shape == (4, SIDE, SIDE, 3) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images, fake_images(4, 1))
    assert train.labels.tolist() == [0, 1, 2, 3] and train.image_ids.tolist() == [0, 1, 2, 3]
    test = load_dataset("stl10", "test", tmp_path)
    assert test.image_ids.tolist() == [5000, 5001, 5002]
    every = load_dataset("stl10", "all", tmp_path)
    assert every.image_ids.tolist() == [0, 1, 2, 3, 5000, 5001, 5002]
    assert every.image_splits == ["train"] * 4 + ["test"] * 3
    unlabeled = load_dataset("stl10", "unlabeled", tmp_path)
    assert unlabeled.image_ids.tolist() == [13_000, 13_001]
    assert unlabeled.labels.tolist() == [NO_LABEL, NO_LABEL] and not unlabeled.labelled and train.labelled
    assert unlabeled.label_names() == ["", ""]
    np.testing.assert_array_equal(unlabeled.images, fake_images(2, 3))
    assert unlabeled.fingerprint() != train.fingerprint()
    # the recorded sources give the same pixels back
    np.testing.assert_array_equal(read_image_sources("stl10", every.sources[::-1]), every.images[::-1])


def test_the_same_pixels_as_torchvision_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import STL10

    write_stl10(tmp_path)
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)  # fakes have no official checksums
    for split in ("train", "test", "unlabeled"):
        theirs = STL10(str(tmp_path), split=split)
        ours = load_dataset("stl10", split, tmp_path)
        np.testing.assert_array_equal(ours.images, theirs.data.transpose(0, 2, 3, 1))  # (n, C, H, W) there
        assert ours.labels.tolist() == [int(label) for label in theirs.labels]


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"STL-10 not found in .*stl10_binary: no train_X.bin, train_y.bin"):
        load_dataset("stl10", "train", tmp_path)
    folder = write_stl10(tmp_path)
    (folder / "test_X.bin").write_bytes(b"\x00" * 1000)
    with pytest.raises(SemretError, match=r"test_X.bin: 1,000 bytes is not a whole number of STL-10 images"):
        load_dataset("stl10", "test", tmp_path)
    (folder / "train_y.bin").write_bytes(bytes([1, 2, 11, 3]))
    with pytest.raises(SemretError, match=r"train_y.bin: label 11 of image 2 is not a class \(1..10\)"):
        load_dataset("stl10", "train", tmp_path)
    (folder / "train_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(SemretError, match=r"train_y.bin: 2 labels for 4 images"):
        load_dataset("stl10", "train", tmp_path)
    (folder / "class_names.txt").write_text("cat\ndog\n")
    with pytest.raises(SemretError, match=r"class_names.txt: the class names .* are not STL-10's"):
        load_dataset("stl10", "unlabeled", tmp_path)


def test_a_collection_takes_the_labelled_splits_only(tmp_path: Path) -> None:
    from semret.app.collections import import_collection
    from semret.sql import migrations
    from semret.sql.engine import make_engine
    from semret.sql.images_store import collection_images

    write_stl10(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    migrations.upgrade(engine)
    with pytest.raises(SemretError, match=r"stl10's unlabeled split has no labels: a collection holds labelled"):
        import_collection(engine, "stl10", "unlabeled", tmp_path)
    report = import_collection(engine, "stl10", "all", tmp_path)
    assert (report.collection, report.images) == ("stl10-all", 7)
    stored = collection_images(engine, "stl10-all")
    assert stored.labels[:4] == ["airplane", "bird", "car", "cat"] and stored.splits.count("test") == 3
    engine.dispose()


def test_semret_eval_runs_on_stl10(sqlite_url: str, tmp_path: Path) -> None:
    """`semret eval --dataset stl10` end to end on fake files: classes drawn as brightness patterns,
    a small CNN at 16 px, exact and the semantic hash (the shipped sample of the norms lacks four
    of STL-10's words, so IWAN there needs the full norms)."""
    import json

    from semret.app.demo import prepare_database

    from helpers import ok

    root = tmp_path / "data"
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for split, n in (("train", 60), ("test", 30)):
        labels = np.arange(n) % 10
        images = (labels[:, None, None, None] * 25 + rng.integers(0, 20, (n, SIDE, SIDE, 3))).astype(np.uint8)
        (folder / f"{split}_X.bin").write_bytes(stl_bytes(images))
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    prepare_database(sqlite_url)
    out = tmp_path / "report"
    result = ok(
        "eval", "--dataset", "stl10", "--data-dir", root, "--backbone", "small-cnn", "--image-size", "16",
        "--backbone-epochs", "1", "--methods", "exact,hash-rerank", "--ks", "1,5", "--queries", "10",
        "--set", "hash.epochs=3", "--cache-dir", tmp_path / "cache",
        "--db", sqlite_url, "--out", out,
    )  # fmt: skip
    assert "mAHP@k" in result.output
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["dataset"] == "stl10" and document["summary"]["queries"] == 10
    assert set(document["methods"]) == {"exact", "hash-rerank"}


def test_cimon_trains_on_the_unlabelled_images(tmp_path: Path) -> None:
    """`semret hash train --method cimon --dataset stl10 --split unlabeled`: the images no
    collection holds (no labels) train CIMON from the command line; only the drawn ones are encoded."""
    from semret.hashing.cimon import CimonHasher

    from helpers import ok, semret

    write_stl10(tmp_path, n_unlabeled=40)
    out = tmp_path / "cimon.pt"
    trained = ok(
        "hash", "train", "--method", "cimon", "--dataset", "stl10", "--split", "unlabeled", "--data-dir", tmp_path,
        "--backbone", "small-cnn", "--weights", "none", "--image-size", "16", "--bits", "8", "--epochs", "1",
        "--views", "2", "--graph-size", "30", "--clusters", "3", "--cache-dir", tmp_path / "cache", "--out", out,
    )  # fmt: skip
    assert "CIMON trained without labels on 30 images x 2 views" in trained.stdout
    model = CimonHasher.load(out)
    assert model.feature_source_ == {"backbone": "small-cnn", "weights": "none", "image_size": 16, "views": 2}
    semantic = semret("hash", "train", "--dataset", "stl10", "--hierarchy", "stl10", "--out", out)
    assert semantic.exit_code == 1 and "--dataset: only for --method cimon" in semantic.stderr
    stray = semret("hash", "train", "--method", "cimon", "--data-dir", tmp_path, "--collection", "x", "--out", out)
    assert stray.exit_code == 1 and "--data-dir: only with --dataset" in stray.stderr
