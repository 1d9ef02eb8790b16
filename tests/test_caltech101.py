"""The Caltech-101 loader on small fake files in torchvision's layout
(``caltech101/101_ObjectCategories/<class>/image_NNNN.jpg``), checked against torchvision's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semret.errors import SemretError
from semret.vision.datasets import dataset_info, dataset_names, load_dataset

from helpers import ok

CLASSES = {"Faces_easy": 3, "accordion": 2, "airplanes": 4}


def write_caltech(root: Path) -> Path:
    folder = root / "caltech101" / "101_ObjectCategories"
    rng = np.random.default_rng(0)
    for name, n in {**CLASSES, "BACKGROUND_Google": 2}.items():
        (folder / name).mkdir(parents=True)
        for i in range(1, n + 1):
            pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"image_{i:04d}.jpg")
    return folder


def test_the_classes_and_images_in_torchvisions_order(tmp_path: Path) -> None:
    from torchvision.datasets import Caltech101

    write_caltech(tmp_path)
    assert "caltech101" in dataset_names()
    info = dataset_info("caltech101", tmp_path)
    assert info.class_names == sorted(CLASSES) and info.splits == ("all",)  # no background class
    images = load_dataset("caltech101", "all", tmp_path, image_size=16)
    assert images.dataset == "caltech101" and images.images.shape == (9, 16, 16, 3)
    reference = Caltech101(str(tmp_path), target_type="category")
    assert reference.categories == info.class_names
    assert images.labels.tolist() == [reference[i][1] for i in range(len(reference))]
    # the same folder given directly, or its parent
    assert len(load_dataset("caltech101", "all", tmp_path / "caltech101", image_size=8)) == 9
    direct = load_dataset("caltech101", "all", tmp_path / "caltech101" / "101_ObjectCategories", image_size=8)
    assert direct.labels.tolist() == images.labels.tolist()


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(SemretError, match=r"Caltech-101 not found in .*Pass --download"):
        load_dataset("caltech101", "all", tmp_path)


def test_a_collection_and_its_images_back(tmp_path: Path) -> None:
    write_caltech(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    ok("db", "upgrade", "--db", url)
    imported = ok("collection", "import", "--dataset", "caltech101", "--data-dir", tmp_path, "--db", url)
    assert "caltech101-all" in imported.stdout
    from semret.app.collections import load_collection
    from semret.sql.engine import make_engine

    engine = make_engine(url)
    stored = load_collection(engine, "caltech101-all", image_size=16)
    np.testing.assert_array_equal(stored.images, load_dataset("caltech101", "all", tmp_path, image_size=16).images)
    assert stored.class_names == sorted(CLASSES)
    engine.dispose()
