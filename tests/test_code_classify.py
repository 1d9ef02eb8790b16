"""Classification from hash codes (`semret classify --codes`, seed 004) on a hash model's stored
codes, through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semret.app.code_classify import code_features

from helpers import FASHION_MNIST_LABELS, ok, semret

NAMES = np.array(FASHION_MNIST_LABELS)


def write_features(path: Path, ids: range, seed: int, noise: float) -> Path:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(10, 16))  # the same classes in every file
    labels = np.arange(len(ids)) % 10
    features = centres[labels] + noise * rng.normal(size=(len(ids), 16))
    np.savez(
        path, image_ids=np.array(ids), features=features.astype(np.float32), labels=NAMES[labels], class_names=NAMES
    )
    return path


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("codes")
    database = f"sqlite:///{folder / 'store.sqlite3'}"
    train = write_features(folder / "train.npz", range(0, 400), seed=1, noise=0.3)
    test = write_features(folder / "test.npz", range(1000, 1200), seed=2, noise=0.3)
    model = folder / "fm.pt"
    ok("hash", "train", train, "--hierarchy", "fashion-mnist", "--out", model, "--bits", "32", "--epochs", "20",
       "--batch-size", "32", "--lr", "0.1")  # fmt: skip
    ok("db", "upgrade", "--db", database)
    for features, name in ((train, "fm-train"), (test, "fm-test")):
        ok("hash", "encode", model, features, "--collection", name, "--create", "--db", database)
    return database, folder


def test_code_features_are_plus_minus_one() -> None:
    packed = np.packbits(np.array([[1, 0, 1, 1, 0, 0, 0, 1, 1]], dtype=np.uint8), axis=1)
    assert code_features(packed, 9).tolist() == [[1, -1, 1, 1, -1, -1, -1, 1, 1]]


def test_classify_from_codes_reports_accuracy_and_a_confusion_matrix(stored: tuple[str, Path]) -> None:
    database, folder = stored
    plot = folder / "confusion.png"
    result = ok(
        "classify", "--collection", "fm-test", "--train-collection", "fm-train", "--codes", "fm",
        "--plot", plot, "--epochs", "40", "--db", database,
    )  # fmt: skip
    out = result.stdout
    assert "classifier on the 32-bit codes of fm: trained on 400 images of fm-train" in out
    accuracy = float(out.split("test accuracy ")[1].split(" ")[0])
    assert accuracy > 0.8  # well separated classes; chance is 0.1
    assert "confusion matrix (rows: true class, columns: predicted)" in out
    # the table's rows add up to the 200 test images, 20 of each class
    rows = [line for line in out.splitlines() if line.startswith("│") and any(n in line for n in NAMES)]
    counts = [[int(cell) for cell in line.strip("│ ").split("│")[1:]] for line in rows]
    assert len(counts) == 10 and [sum(row) for row in counts] == [20] * 10
    assert sum(counts[i][i] for i in range(10)) == round(accuracy * 200)
    with Image.open(plot) as image:
        assert image.size[0] > 300 and image.size[1] > 300


def test_classify_from_codes_errors(stored: tuple[str, Path]) -> None:
    database, _ = stored
    unknown = semret("classify", "--collection", "fm-test", "--codes", "nope", "--db", database)
    assert unknown.exit_code == 1 and "unknown hash model 'nope' (models: fm)" in unknown.stderr
    no_splits = semret("classify", "--collection", "fm-test", "--codes", "fm", "--db", database)
    assert no_splits.exit_code == 1
    assert (
        "collection 'fm-test' needs codes of both train and test images to train and test on (0 train, 0 test)"
        in no_splits.stderr
    )
    mixed = semret("classify", "--collection", "fm-test", "--codes", "fm", "--out", "x.npz", "--db", database)
    assert mixed.exit_code == 1 and "--codes classifies stored codes" in mixed.stderr
    plot_alone = semret("classify", "--collection", "fm-test", "--plot", "x.png", "--db", database)
    assert plot_alone.exit_code == 1 and "--plot draws the confusion matrix of --codes" in plot_alone.stderr


def test_test_images_never_train(stored: tuple[str, Path]) -> None:
    database, _ = stored
    same = semret("classify", "--collection", "fm-test", "--train-collection", "fm-test", "--codes", "fm",
                  "--db", database)  # fmt: skip
    assert same.exit_code == 1 and "every labelled image of 'fm-test' is a test image of 'fm-test'" in same.stderr
