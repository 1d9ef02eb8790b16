"""The fast IWAN search equals networkx's Dijkstra on the full graph: ids, distances, tie order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.errors import SemretError, UnknownWordError
from semret.iwan.graph import WordEdges
from semret.iwan.index import IwanIndex, WeightedWords
from semret.iwan.reference import ReferenceIwan

# A few repeated strengths make equal distances, and so exercise the tie order.
strengths = st.one_of(st.sampled_from([0.1, 0.2, 0.25, 0.5, 1.0]), st.floats(0.01, 1.0))


@st.composite
def iwan_cases(draw: st.DrawFn) -> tuple[IwanIndex, list[WeightedWords], list[int | None], int]:
    n_words = draw(st.integers(1, 12))
    word = st.integers(0, n_words - 1)
    edge_keys = draw(st.lists(st.tuples(word, word).filter(lambda e: e[0] != e[1]), unique=True, max_size=40))
    edge_strengths = draw(st.lists(strengths, min_size=len(edge_keys), max_size=len(edge_keys)))
    edges = WordEdges(
        np.array([s for s, _ in edge_keys], dtype=np.int64),
        np.array([t for _, t in edge_keys], dtype=np.int64),
        np.array(edge_strengths, dtype=np.float64),
    )
    image_ids = draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True))
    link_images, link_words, link_strengths = [], [], []
    for image in image_ids:
        for w in draw(st.lists(word, min_size=1, max_size=4, unique=True)):
            link_images.append(image)
            link_words.append(w)
            link_strengths.append(draw(strengths))
    index = IwanIndex([f"W{i}" for i in range(n_words)], edges, link_images, link_words, link_strengths)
    queries, excluded = [], []
    for _ in range(draw(st.integers(1, 3))):
        words = draw(st.lists(word, min_size=1, max_size=4, unique=True))
        queries.append(WeightedWords(np.array(words), np.array([draw(strengths) for _ in words], dtype=np.float64)))
        excluded.append(draw(st.one_of(st.none(), st.sampled_from(image_ids))))
    return index, queries, excluded, draw(st.integers(1, 14))


@settings(max_examples=300, deadline=None)
@given(iwan_cases())
def test_fast_search_equals_networkx_on_the_full_graph(case: tuple) -> None:
    index, queries, excluded, k = case
    expected_distances, expected_ids = ReferenceIwan(index).search(queries, k, exclude=excluded)
    width = min(k, index.ntotal)  # the search contract bounds the rows by the collection
    for early_stop in (True, False):
        index.early_stop = early_stop
        scores, ids = index.search(queries, k, exclude_ids=excluded)
        np.testing.assert_array_equal(ids, expected_ids[:, :width])
        np.testing.assert_array_equal(index.to_distance(scores), expected_distances[:, :width])
        np.testing.assert_array_equal(scores, -expected_distances[:, :width])


@settings(max_examples=100, deadline=None)
@given(iwan_cases())
def test_explanations_are_real_shortest_paths(case: tuple) -> None:
    index, queries, excluded, k = case
    scores, ids = index.search(queries, k, exclude_ids=excluded)
    distances = index.to_distance(scores)
    reference = ReferenceIwan(index)
    for query, row_ids, row_distances in zip(queries, ids, distances, strict=True):
        node_distances = reference.distances(query)
        for image, distance in zip(row_ids, row_distances, strict=True):
            if image < 0:
                continue
            path = index.explain(query, int(image))
            assert path[0].kind == "query" and path[-1].kind == "image"
            assert path[-1].distance == distance
            for step in path[1:-1]:  # every word on the path is at its shortest distance
                assert step.distance == node_distances[("word", index.word_index[step.name])]
            first_word = index.word_index[path[1].name]
            assert first_word in set(query.words.tolist())


def small_index() -> IwanIndex:
    # W0 -> W1 (0.5), W1 -> W2 (0.25); images: 7 via W1, 3 via W2, 5 via W0 and W2
    edges = WordEdges(np.array([0, 1]), np.array([1, 2]), np.array([0.5, 0.25]))
    return IwanIndex(["W0", "W1", "W2"], edges, [7, 3, 5, 5], [1, 2, 0, 2], [1.0, 0.5, 0.125, 1.0], labels={7: "cat"})


def test_a_hand_computed_ranking() -> None:
    index = small_index()
    query = index.query_from_words({"w0": 1.0})
    scores, ids = index.search([query], k=5)
    # W0 = 1; W1 = 1 + 2 = 3; W2 = 3 + 4 = 7. Image 7 = 3 + 1 = 4; 5 = min(1 + 8, 7 + 1) = 8; 3 = 7 + 2 = 9.
    assert ids.tolist() == [[7, 5, 3]]  # three images: min(k, ntotal) columns
    assert scores.tolist() == [[-4.0, -8.0, -9.0]]
    assert index.to_distance(scores).tolist() == [[4.0, 8.0, 9.0]]
    scores, ids = index.search([query], k=5, exclude_ids=[5])
    assert ids.tolist() == [[7, 3, -1]] and index.to_distance(scores).tolist() == [[4.0, 9.0, np.inf]]
    assert [(s.kind, s.name, s.distance) for s in index.explain(query, 7)] == [
        ("query", "query", 0.0),
        ("word", "W0", 1.0),
        ("word", "W1", 3.0),
        ("image", "7 (cat)", 4.0),
    ]
    # image 7's own query is W1 at strength 1: W1 = 1, W2 = 5; image 5 = 5 + 1 = 6, image 3 = 5 + 2 = 7.
    scores, ids = index.search([index.query_for_image(7)], k=2, exclude_ids=[7])
    assert ids.tolist() == [[5, 3]] and scores.tolist() == [[-6.0, -7.0]]


def test_bad_queries_are_clear_errors() -> None:
    index = small_index()
    with pytest.raises(UnknownWordError, match="did you mean W0"):
        index.query_from_words({"W00": 0.5})
    with pytest.raises(SemretError, match=r"must be in \(0, 1\]"):
        index.query_from_words({"W0": 1.5})
    with pytest.raises(SemretError, match="given twice"):
        index.query_from_words([("W0", 0.5), ("w0", 0.4)])
    with pytest.raises(SemretError, match="at least one word"):
        index.query_from_words({})
    with pytest.raises(SemretError, match="k must be at least 1"):
        index.search([index.query_from_words({"W0": 1.0})], k=0)
    with pytest.raises(SemretError, match="image 99 is not in this IWAN index"):
        index.query_for_image(99)
    empty = IwanIndex(["W0"], WordEdges(np.array([]), np.array([]), np.array([])), [], [], [])
    with pytest.raises(SemretError, match="no images"):
        empty.search([empty.query_from_words({"W0": 1.0})], 10)
