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
from semret.iwan.published import ForwardNorms, PublishedIwanSettings, predicted_words
from semret.iwan.reference import ReferenceIwan, ReferencePublishedIwan
from semret.sql import migrations
from semret.sql.bulk import MergeCounts
from semret.sql.engine import make_engine
from semret.sql.images_store import (
    IMAGE_WORDS,
    IMAGENET_WORDS,
    IMAGES,
    WORDS,
    RankedWords,
    list_collections,
    store_image_words,
    store_imagenet_words,
    store_images,
)
from semret.sql.iwan_store import (
    EDGES,
    LINKS,
    NODE_EDGES,
    NODES,
    PAIRS,
    SqlImageRanker,
    build_iwan_graph,
    build_published_iwan_graph,
    collection_with_graph,
    image_links,
    image_query,
    iwan_searcher,
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


def _ranker_equals_memory(ranker: SqlImageRanker, stored, rng: np.random.Generator, ids: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Random word distances (some large, where d + 1/s rounds alike for neighbouring strengths,
    some rounded: ties), small k (a word's links beyond its first few matter only through ties),
    with and without an excluded image: the SQL ranker's ids and distances equal the in-memory ones."""
    n_words = len(stored.word_ids)
    for trial in range(30):
        scale = rng.choice([1.0, 2.0**30, 1e6])
        word_distances = rng.exponential(3.0, size=n_words) * scale
        if trial % 2 == 0:
            word_distances = np.round(word_distances / scale) * scale
        word_distances[rng.random(n_words) < 0.3] = np.inf
        for k in (1, 3, 7):
            for exclude in (None, int(rng.choice(ids))):
                got = ranker(word_distances, k, exclude)
                expected = stored.index(word_distances, k, exclude)
                np.testing.assert_array_equal(got[1], expected[1])
                np.testing.assert_array_equal(got[0], expected[0])


def test_sql_ranking_bounded_by_words_keeps_ties_and_collections_apart(engine: Engine) -> None:
    """Few words shared by three collections with the same image ids, strengths with many ties and
    neighbouring floats (0.5 and the floats just below: their distances round alike from large word
    distances, so a weaker link with a smaller id can win a tie), top-IWK 2 of up to 4 words: the
    SQL ranker, which reads only each word's first links, ranks exactly as in memory."""
    words = ["APPLE", "RED", "ORANGE", "FRUIT", "PEAR"]
    below = np.nextafter(0.5, 0.0)
    levels = [0.5, below, np.nextafter(below, 0.0), 0.25]
    rng = np.random.default_rng(12)
    ids = rng.choice(500, size=120, replace=False)
    for name in ("a", "b", "c"):  # b is ranked; a's and c's links must not use up a word's quota
        chosen = [list(rng.choice(words, size=rng.integers(1, 5), replace=False)) for _ in ids]
        strengths = [sorted(rng.choice(levels, size=len(c)).tolist(), reverse=True) for c in chosen]
        store_images(engine, name, ids)
        store_image_words(engine, name, RankedWords(ids, chosen, strengths))
    build_iwan_graph(engine, "b", IwanSettings(top_iwk=2))
    stored = load_iwan(engine, "b")
    ranker = SqlImageRanker(engine, load_iwan(engine, "b", with_images=False))
    assert ranker.ntotal == stored.index.ntotal
    _ranker_equals_memory(ranker, stored, rng, ids)


def test_a_weaker_link_whose_distance_rounds_alike_wins_its_tie_by_id(engine: Engine) -> None:
    """From 2**30, 1 / 0.5 and 1 / (the float below 0.5) give the same distance: image 10 (0.5) is
    the strongest link, yet the weaker 3, 5 and 7 come first by id, so a word's k-th place in
    strength order does not settle its ties (the ranker reads 2k links; the random test above needs
    the links beyond them that round alike)."""
    below = float(np.nextafter(0.5, 0.0))
    store_images(engine, "tie", [10, 5, 7, 3, 1])
    store_image_words(
        engine, "tie", ranked([10, 5, 7, 3, 1], [["APPLE"]] * 5, [[0.5], [below], [below], [below], [0.25]])
    )
    build_iwan_graph(engine, "tie", IwanSettings())
    stored = load_iwan(engine, "tie")
    ranker = SqlImageRanker(engine, load_iwan(engine, "tie", with_images=False))
    word_distances = np.where(np.array(stored.index.words) == "APPLE", 2.0**30, np.inf)
    for k, expected_ids in ((1, [3]), (2, [3, 5]), (4, [3, 5, 7, 10])):
        got = ranker(word_distances, k, None)
        assert got[1].tolist() == expected_ids == stored.index(word_distances, k, None)[1].tolist()
        assert (got[0] == 2.0**30 + 2).all()


# --- IWAN as published ---------------------------------------------------------------------------


PUBLISHED_NAMES = ["GRANNY APPLE", "ORANGE", "BARTLETT PEAR", "HOTDOG", "RED FRUIT", "HOT DOGS", "POOL"]


def published_collection(engine: Engine) -> tuple[np.ndarray, list[str | None], RankedWords]:
    """30 images with labels (hot_dog's last word is not in the norms: it falls back to HOT DOGS)
    and random ImageNet words, some repeated strengths (ties)."""
    rng = np.random.default_rng(3)
    ids = np.sort(rng.choice(1000, size=30, replace=False))
    labels: list[str | None] = [str(rng.choice(["apple", "pear", "hot_dog", "fruit"])) for _ in ids]
    labels[0] = None
    probabilities = rng.choice([0.0, 0.05, 0.1, 0.2, 0.4], size=(len(ids), len(PUBLISHED_NAMES)))
    ranked_words = predicted_words(ids, probabilities, [n.lower() for n in PUBLISHED_NAMES])
    store_images(engine, "pub", ids, labels)
    store_imagenet_words(engine, "pub", ranked_words)
    return ids, labels, ranked_words


def forward_norms(engine: Engine) -> ForwardNorms:
    with engine.connect() as conn:
        cue, target = WORDS.alias("c"), WORDS.alias("t")
        rows = conn.execute(
            select(cue.c.word, target.c.word, PAIRS.c.fsg)
            .join_from(PAIRS, cue, cue.c.id == PAIRS.c.cue_id)
            .join(target, target.c.id == PAIRS.c.target_id)
        ).all()
    return ForwardNorms([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows]))


def test_published_graph_ranks_alike_in_memory_in_sql_and_in_networkx(engine: Engine) -> None:
    ids, labels, ranked_words = published_collection(engine)
    for setting in (PublishedIwanSettings(), PublishedIwanSettings(top_iwk=1, top_wwk=2, label_strength=0.8)):
        report = build_published_iwan_graph(engine, "pub", setting)
        assert report.fallback_lookups == {"HOT DOG": "HOT DOGS"} and report.images == 30
        memory = iwan_searcher(engine, "pub")
        in_sql = iwan_searcher(engine, "pub", in_sql=True)
        assert memory.published and memory.index.words == in_sql.index.words
        assert len(memory.index.words) == report.words and len(memory.index.edges) == 2 * report.word_edges
        reference = ReferencePublishedIwan(
            ids, labels, ranked_words, forward_norms(engine), setting, {"HOT DOG": "HOT DOGS"}
        )
        assert reference.nodes == memory.index.words
        chosen = [int(i) for i in ids[:12]]
        queries = [image_query(engine, memory, i) for i in chosen]
        assert [len(q.words) for q in queries] == [
            len([w for w in ranked_words.words[row] if w in memory.index.word_index]) for row in range(12)
        ]  # all ten words (here up to 7), not only top-IWK
        scores, found = memory.index.search(queries, 9, exclude_ids=chosen)
        sql_scores, sql_found = in_sql.index.search(queries, 9, exclude_ids=chosen)
        expected = reference.search(
            [(ranked_words.words[row], ranked_words.strengths[row]) for row in range(12)], 9, chosen
        )
        for got_ids, got_distances in ((sql_found, in_sql.index.to_distance(sql_scores)), expected[::-1]):
            np.testing.assert_array_equal(got_ids, found)
            np.testing.assert_array_equal(got_distances, memory.index.to_distance(scores))
        assert not (found == np.array(chosen)[:, None]).any()
        assert in_sql.index.ntotal == memory.index.ntotal == 30
        links = image_links(engine, in_sql, [int(i) for i in found[0] if i >= 0])
        paths = in_sql.index.explain_links(queries[0], links)
        distances = dict(zip(found[0].tolist(), memory.index.to_distance(scores)[0].tolist(), strict=True))
        assert all(path[-1].distance == distances[image] for image, path in paths.items())


def test_published_build_is_idempotent_and_one_transaction(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    published_collection(engine)

    def rows() -> dict[str, list[tuple]]:
        with engine.connect() as conn:
            return {
                table.name: sorted(tuple(r)[1:] for r in conn.execute(select(table)).all())
                for table in (NODES, NODE_EDGES, LINKS)
            }

    build_published_iwan_graph(engine, "pub", PublishedIwanSettings())
    first = rows()
    build_published_iwan_graph(engine, "pub", PublishedIwanSettings())
    assert rows() == first and all(first.values())

    import semret.sql.iwan_store as iwan_store

    real = iwan_store.bulk_insert

    def failing(conn, table, columns, values, **kw):  # type: ignore[no-untyped-def]
        if table is LINKS:
            raise RuntimeError("disk full")
        return real(conn, table, columns, values, **kw)

    monkeypatch.setattr(iwan_store, "bulk_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_published_iwan_graph(engine, "pub", PublishedIwanSettings(top_iwk=1))
    assert rows() == first  # the failed rebuild changed nothing
    monkeypatch.undo()
    assert iwan_searcher(engine, "pub").index.settings.top_iwk == 4


def test_published_and_semret_graphs_replace_each_other(engine: Engine) -> None:
    ids, _, _ = published_collection(engine)
    with pytest.raises(SemretError, match="has no image words yet"):
        build_iwan_graph(engine, "pub", IwanSettings())
    fruit_collection(engine)
    with pytest.raises(SemretError, match=r"collection 'fruit' has no ImageNet words: link them first with "):
        build_published_iwan_graph(engine, "fruit", PublishedIwanSettings())
    build_published_iwan_graph(engine, "pub", PublishedIwanSettings())
    assert iwan_searcher(engine, "pub").published
    store_image_words(engine, "pub", ranked([int(i) for i in ids[:2]], [["APPLE"], ["RED"]], [[0.5], [0.5]]))
    build_iwan_graph(engine, "pub", IwanSettings())
    stored = iwan_searcher(engine, "pub")
    assert not stored.published and stored.index.ntotal == 2
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(NODES)).scalar_one() == 0  # the old graph's nodes went
        assert conn.execute(select(func.count()).select_from(IMAGENET_WORDS)).scalar_one() > 0  # the words stay


def test_published_sql_ranking_settles_label_ties_by_id(engine: Engine) -> None:
    """A published graph links every image of a label with the same strength: ties by the
    thousand in a large collection, settled by image id in the ranking index, as in memory."""
    ids, _, _ = published_collection(engine)
    build_published_iwan_graph(engine, "pub", PublishedIwanSettings(top_iwk=2))
    memory = iwan_searcher(engine, "pub")
    ranker = SqlImageRanker(engine, load_iwan(engine, "pub", with_images=False))
    _ranker_equals_memory(ranker, memory, np.random.default_rng(5), ids)
