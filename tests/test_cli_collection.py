"""Collections in the store and `semret collection import/list`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from test_datasets import write_fashion_mnist, write_png

from semret.errors import SemretError
from semret.sql import migrations
from semret.sql.bulk import MergeCounts
from semret.sql.engine import make_engine
from semret.sql.images_store import COLLECTIONS, IMAGES, import_image_set, list_collections, store_images
from semret.vision.datasets import load_dataset

from helpers import ok, semret


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    write_fashion_mnist(tmp_path / "fashion")
    return tmp_path / "fashion"


def stored_images(engine: Engine, collection: str) -> list[tuple[int, str | None, str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(IMAGES.c.image_id, IMAGES.c.label, IMAGES.c.split, IMAGES.c.source)
            .join(COLLECTIONS, COLLECTIONS.c.id == IMAGES.c.collection_id)
            .where(COLLECTIONS.c.name == collection)
            .order_by(IMAGES.c.image_id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_import_is_idempotent_and_splits_add_up(engine: Engine, fashion_dir: Path) -> None:
    test = load_dataset("fashion-mnist", "test", fashion_dir)
    assert import_image_set(engine, "fm", test) == MergeCounts(10, 0, 0)
    assert import_image_set(engine, "fm", test) == MergeCounts(0, 0, 0)
    rows = stored_images(engine, "fm")
    assert rows[3] == (60_003, "Dress", "test", test.sources[3])

    train = load_dataset("fashion-mnist", "train", fashion_dir)
    assert import_image_set(engine, "fm", train) == MergeCounts(20, 0, 0)
    assert import_image_set(engine, "fm", load_dataset("fashion-mnist", "all", fashion_dir)) == MergeCounts(0, 0, 0)
    (summary,) = list_collections(engine)
    assert (summary.name, summary.images, summary.dataset) == ("fm", 30, "fashion-mnist")
    assert summary.splits == {"test": 10, "train": 20} and summary.images_with_words == 0


def test_a_collection_holds_one_dataset(engine: Engine, fashion_dir: Path, tmp_path: Path) -> None:
    import_image_set(engine, "mine", load_dataset("fashion-mnist", "test", fashion_dir))
    write_png(tmp_path / "pets" / "cat" / "a.png", (4, 4), (0, 0, 0))
    pets = load_dataset("folder", "all", tmp_path / "pets", image_size=2)
    with pytest.raises(SemretError, match=r"collection 'mine' holds images of dataset 'fashion-mnist', not 'folder'"):
        import_image_set(engine, "mine", pets)
    assert len(stored_images(engine, "mine")) == 10


def test_store_images_updates_only_the_columns_given(engine: Engine) -> None:
    store_images(engine, "c", [1, 2], ["a", "b"], splits=["train", "test"], sources=["/x#1", "/x#2"])
    assert store_images(engine, "c", [1, 2, 3], ["a", "B", "c"]) == MergeCounts(1, 1, 0)
    assert store_images(engine, "c", [3, 4]) == MergeCounts(1, 0, 0)  # no columns given: only inserts
    assert stored_images(engine, "c") == [
        (1, "a", "train", "/x#1"),
        (2, "B", "test", "/x#2"),
        (3, "c", None, None),
        (4, None, None, None),
    ]
    with pytest.raises(SemretError, match="2 image ids but 1 splits"):
        store_images(engine, "c", [1, 2], splits=["train"])
    with pytest.raises(SemretError, match="the source of image 0 is 1025 characters long, more than the store's 1024"):
        store_images(engine, "c", [1], sources=["x" * 1025])


def test_cli_import_twice_then_list(database_url: str, fashion_dir: Path) -> None:
    ok("db", "upgrade", "--db", database_url)
    args = ("collection", "import", "--dataset", "fashion-mnist", "--data-dir", fashion_dir, "--db", database_url)
    first = ok(*args)
    assert "collection fashion-mnist-test: 10 images of fashion-mnist (test), 10 classes; added 10" in first.stdout
    again = ok(*args)
    assert "added 0, updated 0, unchanged 10" in again.stdout
    ok(*args, "--split", "train", "--name", "fashion-mnist-test")
    listed = json.loads(ok("collection", "list", "--json", "--db", database_url).stdout)
    assert listed == [
        {
            "name": "fashion-mnist-test",
            "images": 30,
            "images_with_words": 0,
            "dataset": "fashion-mnist",
            "splits": {"test": 10, "train": 20},
        }
    ]
    table = ok("collection", "list", "--db", database_url).stdout
    assert "fashion-mnist-test" in table and "test 10, train 20" in table


def test_cli_import_folder_and_errors(database_url: str, tmp_path: Path) -> None:
    ok("db", "upgrade", "--db", database_url)
    write_png(tmp_path / "pets" / "cat" / "a.png", (4, 4), (0, 0, 0))
    write_png(tmp_path / "pets" / "dog" / "b.png", (4, 4), (9, 9, 9))
    imported = ok("collection", "import", "--dataset", "folder", "--data-dir", tmp_path / "pets", "--image-size", "8",
                  "--db", database_url)  # fmt: skip
    assert "collection folder-all: 2 images of folder (all), 2 classes; added 2" in imported.stdout
    unknown = semret("collection", "import", "--dataset", "mnist", "--db", database_url)
    assert unknown.exit_code == 1 and "unknown dataset 'mnist'" in unknown.stderr
    missing = semret("collection", "import", "--dataset", "cifar10", "--data-dir", tmp_path, "--db", database_url)
    assert missing.exit_code == 1 and "CIFAR-10 not found" in missing.stderr and "--download" in missing.stderr
    bad_split = semret("collection", "import", "--dataset", "folder", "--data-dir", tmp_path / "pets", "--split",
                       "train", "--db", database_url)  # fmt: skip
    assert bad_split.exit_code == 1 and "its splits: all" in bad_split.stderr
    assert "(none)" not in ok("collection", "list", "--db", database_url).stdout


def test_cli_list_without_collections(sqlite_url: str) -> None:
    ok("db", "upgrade", "--db", sqlite_url)
    assert json.loads(ok("collection", "list", "--json", "--db", sqlite_url).stdout) == []
    assert "(none)" in ok("collection", "list", "--db", sqlite_url).stdout
