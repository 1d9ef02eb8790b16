"""IWAN in the store, on SQLite and PostgreSQL: images and their words, graph builds, and ranking
in memory, in SQL and with networkx giving the same results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from semret.app.iwan import link_predictions
from semret.errors import SemretError
from semret.iwan.graph import IwanSettings
from semret.iwan.links import Predictions, ranked_words_from_probabilities, read_predictions
from semret.iwan.norms import find_norms_files, read_norms_file
from semret.iwan.reference import ReferenceIwan
from semret.sql import migrations
from semret.sql.bulk import MergeCounts
from semret.sql.engine import make_engine
from semret.sql.images_store import (
    IMAGE_WORDS,
    IMAGES,
    WORDS,
    RankedWords,
    list_collections,
    store_image_words,
    store_images,
)
from semret.sql.iwan_store import (
    EDGES,
    SqlImageRanker,
    build_iwan_graph,
    collection_with_graph,
    image_query,
    load_iwan,
)
from semret.sql.norms_store import load_norms

FIXTURES = Path(__file__).parent / "fixtures" / "norms"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    load_norms(engine, [read_norms_file(p) for p in find_norms_files([FIXTURES])])
    yield engine
    engine.dispose()


def ranked(ids: list[int], words: list[list[str]], strengths: list[list[float]]) -> RankedWords:
    return RankedWords(np.array(ids, dtype=np.int64), words, strengths)


def fruit_collection(engine: Engine) -> None:
    """Images 1: RED, 2: FRUIT + ORANGE, 3: BUN (unreachable from fruit), 4: APPLE."""
    store_images(engine, "fruit", [1, 2, 3, 4], ["red thing", "fruit bowl", "bun", "apple"])
    store_image_words(
        engine,
        "fruit",
        ranked([1, 2, 3, 4], [["RED"], ["FRUIT", "ORANGE"], ["BUN"], ["APPLE"]], [[0.9], [0.5, 0.25], [1.0], [0.8]]),
    )


def test_a_hand_computed_query_in_memory_and_in_sql(engine: Engine) -> None:
    fruit_collection(engine)
    report = build_iwan_graph(engine, "fruit", IwanSettings())
    assert (report.images, report.image_links, report.word_edges) == (4, 5, 15)  # no fixture cue has > 4 pairs
    stored = load_iwan(engine, "fruit")
    query = stored.index.query_from_words({"pear": 1.0})
    # PEAR -> FRUIT .347, PEAR -> APPLE .252, APPLE -> RED .208, APPLE -> ORANGE .174, APPLE -> FRUIT .154
    pear, fruit, apple = 1.0, 1.0 + 1 / 0.347, 1.0 + 1 / 0.252
    red, orange = apple + 1 / 0.208, apple + 1 / 0.174
    expected = [(2, min(fruit + 1 / 0.5, orange + 1 / 0.25)), (4, apple + 1 / 0.8), (1, red + 1 / 0.9)]
    assert pear == 1.0
    for ranker in (None, SqlImageRanker(engine, load_iwan(engine, "fruit", with_images=False))):
        stored.index.ranker = ranker
        scores, ids = stored.index.search([query], 4)
        distances = stored.index.to_distance(scores)
        assert ids.tolist() == [[2, 4, 1, -1]]
        np.testing.assert_allclose(distances[0, :3], [d for _, d in expected], rtol=1e-12)
    stored.index.ranker = None
    path = stored.index.explain(query, 1)
    assert [step.name for step in path] == ["query", "PEAR", "APPLE", "RED", "1 (red thing)"]


def test_sql_ranking_equals_memory_and_networkx_on_random_images(engine: Engine) -> None:
    words = ["APPLE", "RED", "ORANGE", "FRUIT", "PEAR", "BUN", "HOT DOGS", "POOL", "STICK", "B", "911"]
    rng = np.random.default_rng(7)
    ids = rng.choice(10_000, size=60, replace=False)
    chosen = [list(rng.choice(words, size=rng.integers(1, 4), replace=False)) for _ in ids]
    strengths = [list(rng.choice([0.25, 0.5, 1.0, 0.3], size=len(c))) for c in chosen]  # repeated values: ties
    store_images(engine, "random", ids)
    store_image_words(engine, "random", RankedWords(ids, chosen, strengths))
    for settings in (IwanSettings(top_iwk=2), IwanSettings(backward=True, normed_only=True)):
        build_iwan_graph(engine, "random", settings)
        stored = load_iwan(engine, "random")
        queries = [image_query(engine, stored, int(i)) for i in ids[:15]]
        excluded = [int(i) for i in ids[:15]]
        scores, found = stored.index.search(queries, 8, exclude_ids=excluded)
        memory = (stored.index.to_distance(scores), found)
        reference = ReferenceIwan(stored.index).search(queries, k=8, exclude=excluded)
        stored.index.ranker = SqlImageRanker(engine, load_iwan(engine, "random", with_images=False))
        scores, found = stored.index.search(queries, 8, exclude_ids=excluded)
        in_sql = (stored.index.to_distance(scores), found)
        stored.index.ranker = None
        for got in (reference, in_sql):
            np.testing.assert_array_equal(got[1], memory[1])
            np.testing.assert_array_equal(got[0], memory[0])


def test_storing_images_and_words_again_changes_nothing(engine: Engine) -> None:
    fruit_collection(engine)
    assert store_images(engine, "fruit", [1, 2, 3, 4], ["red thing", "fruit bowl", "bun", "apple"]) == MergeCounts(
        0, 0, 0
    )
    assert store_images(engine, "fruit", [4], ["green apple"]) == MergeCounts(0, 1, 0)
    words = ranked([1, 2, 3, 4], [["RED"], ["FRUIT", "ORANGE"], ["BUN"], ["APPLE"]], [[0.9], [0.5, 0.25], [1.0], [0.8]])
    assert store_image_words(engine, "fruit", words) == MergeCounts(0, 0, 0)
    # new words replace an image's old ones; an empty list removes them
    changed = store_image_words(engine, "fruit", ranked([2, 3], [["FRUIT"], []], [[0.6], []]))
    assert changed == MergeCounts(0, 1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IMAGE_WORDS)).scalar_one() == 3
    assert list_collections(engine)[0].images_with_words == 3


def test_words_that_swap_ranks_are_stored(engine: Engine) -> None:
    """A new classifier may rank an image's words the other way round: the store takes it."""
    fruit_collection(engine)
    changed = store_image_words(engine, "fruit", ranked([2], [["ORANGE", "FRUIT"]], [[0.5, 0.25]]))
    assert changed == MergeCounts(2, 0, 2)
    with engine.connect() as conn:
        rows = conn.execute(
            select(IMAGE_WORDS.c.rank, WORDS.c.word, IMAGE_WORDS.c.strength)
            .join(IMAGES, IMAGES.c.id == IMAGE_WORDS.c.image_key)
            .join(WORDS, WORDS.c.id == IMAGE_WORDS.c.word_id)
            .where(IMAGES.c.image_id == 2)
            .order_by(IMAGE_WORDS.c.rank)
        ).all()
    assert [tuple(row) for row in rows] == [(1, "ORANGE", 0.5), (2, "FRUIT", 0.25)]


@pytest.mark.parametrize(
    ("words", "strengths", "message"),
    [
        ([["NOT A WORD"]], [[0.5]], "words not in the loaded norms: NOT A WORD"),
        ([["RED"]], [[1.5]], r"strength of RED must be in \(0, 1\]"),
        ([["RED", "RED"]], [[0.5, 0.4]], "has a word more than once"),
    ],
)
def test_bad_image_words_write_nothing(
    engine: Engine, words: list[list[str]], strengths: list[list[float]], message: str
) -> None:
    store_images(engine, "c", [1])
    with pytest.raises(SemretError, match=message):
        store_image_words(engine, "c", ranked([1], words, strengths))
    with pytest.raises(SemretError, match=r"1 images are not in collection 'c', e.g. \[2\]"):
        store_image_words(engine, "c", ranked([2], [["RED"]], [[0.5]]))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IMAGE_WORDS)).scalar_one() == 0


def test_builds_need_a_collection_with_words_and_queries_need_a_graph(engine: Engine) -> None:
    with pytest.raises(SemretError, match=r"unknown collection 'nope' \(collections: none yet\)"):
        build_iwan_graph(engine, "nope", IwanSettings())
    store_images(engine, "empty", [1])
    with pytest.raises(SemretError, match="has no image words yet"):
        build_iwan_graph(engine, "empty", IwanSettings())
    with pytest.raises(SemretError, match="has no IWAN graph: run `semret iwan build --collection empty`"):
        load_iwan(engine, "empty")
    with pytest.raises(SemretError, match="no collection has an IWAN graph yet"):
        collection_with_graph(engine, None)
    fruit_collection(engine)
    build_iwan_graph(engine, "fruit", IwanSettings())
    assert collection_with_graph(engine, None) == "fruit"


def test_a_rebuild_replaces_the_graph(engine: Engine) -> None:
    fruit_collection(engine)
    build_iwan_graph(engine, "fruit", IwanSettings(top_wwk=4))
    build_iwan_graph(engine, "fruit", IwanSettings(top_wwk=1))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EDGES)).scalar_one() == 11  # one per cue (11 cues)
    assert load_iwan(engine, "fruit").index.settings.top_wwk == 1


def test_words_from_class_probabilities() -> None:
    # two classes share SHIRT: their probabilities add up; ties are broken by the word
    ranked_words = ranked_words_from_probabilities(
        [10, 11], [[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]], [["SHIRT"], ["SHIRT", "TOP"], ["COAT"]], top=2
    )
    assert ranked_words.words == [["SHIRT", "TOP"], ["COAT"]]
    np.testing.assert_allclose(ranked_words.strengths[0], [0.8, 0.3])
    with pytest.raises(SemretError, match=r"shape \(images, classes\) = \(2, 3\)"):
        ranked_words_from_probabilities([1, 2], [[1.0, 0.0]], [["A"], ["B"], ["C"]], top=1)


def test_link_predictions_maps_labels_and_stores_everything(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "predictions.npz"
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.savez(
        path,
        image_ids=np.array([5, 6]),
        probabilities=probabilities,
        class_names=np.array(["apple", "pears", "hot_dog"]),
        labels=np.array([0, 2]),
    )
    predictions = read_predictions(path)
    assert predictions.labels == ["apple", "hot_dog"]
    report = link_predictions(engine, "snacks", predictions, create=True)
    assert {lw.label: lw.words for lw in report.vocabulary.mapping.values()} == {
        "apple": ("APPLE",),
        "pears": ("PEAR",),
        "hot_dog": ("HOT DOGS",),
    }
    assert report.images == MergeCounts(2, 0, 0) and report.image_words.inserted == 6
    unmappable = Predictions(np.array([1]), np.array([[1.0]]), ["zebra"], [None])
    with pytest.raises(SemretError, match="zebra"):
        link_predictions(engine, "zoo", unmappable, create=True)
    np.savez(tmp_path / "bad.npz", image_ids=np.array([1]))
    with pytest.raises(SemretError, match="no array 'probabilities'"):
        read_predictions(tmp_path / "bad.npz")


def test_sql_ranking_is_exact_for_any_word_distances(engine: Engine) -> None:
    """The word distances reach the database bit for bit (SQLite too, whose text-to-number
    conversion is not always exact): the same distances and tie order as in memory, for distances
    with full 53-bit mantissas, tiny and huge ones, zeros, ties and unreached words."""
    words = ["APPLE", "RED", "ORANGE", "FRUIT", "PEAR", "BUN", "HOT DOGS", "POOL", "STICK", "B", "911"]
    rng = np.random.default_rng(11)
    ids = rng.choice(1_000, size=40, replace=False)
    chosen = [list(rng.choice(words, size=rng.integers(1, 4), replace=False)) for _ in ids]
    strengths = [list(rng.choice([0.25, 0.5, 1.0, 0.3, 0.7], size=len(c))) for c in chosen]
    store_images(engine, "random", ids)
    store_image_words(engine, "random", RankedWords(ids, chosen, strengths))
    build_iwan_graph(engine, "random", IwanSettings())
    stored = load_iwan(engine, "random")
    ranker = SqlImageRanker(engine, load_iwan(engine, "random", with_images=False))
    assert ranker.ntotal == len(stored.index.image_ids) == len(ids)
    n_words = len(stored.word_ids)
    special = np.array([0.0, 1e-30, 2.0**-70 * 3, 1e15, 2.0**60 + 2.0**8, 1 / 3, np.pi, np.inf])
    for trial in range(25):
        word_distances = rng.exponential(5.0, size=n_words) * rng.choice([1.0, 1e-6, 1e6], size=n_words)
        if trial % 3 == 0:
            word_distances = np.round(word_distances)  # ties
        word_distances[rng.choice(n_words, size=4, replace=False)] = rng.choice(special, size=4)
        word_distances[rng.random(n_words) < 0.2] = np.inf
        for exclude in (None, int(ids[trial])):
            got = ranker(word_distances, 12, exclude)
            expected = stored.index(word_distances, 12, exclude)
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_array_equal(got[0], expected[0])
