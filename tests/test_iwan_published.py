"""IWAN as published (`semret.iwan.published`): names, lookups, nodes, edges, links, queries; the
fast search equals networkx on the full graph built the literal way; the ImageNet head; the runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semret.errors import SemretError
from semret.iwan.links import RankedWords
from semret.iwan.published import (
    ForwardNorms,
    PublishedIwanSettings,
    build_published_graph,
    imagenet_word,
    label_lookups,
    lookup_word,
    predicted_words,
    published_query,
)
from semret.iwan.reference import ReferencePublishedIwan

NORMS = ForwardNorms(
    ["SHARK", "SHARK", "SHARK", "FISH", "FISH", "WATER", "TANK", "OCEAN", "SHIRT"],
    ["FISH", "OCEAN", "TEETH", "WATER", "SHARK", "OCEAN", "FISH", "SHARK", "PANTS"],
    np.array([0.3, 0.2, 0.2, 0.4, 0.1, 0.25, 0.05, 0.5, 0.6]),
)


def ranked(ids: list[int], words: list[list[str]], strengths: list[list[float]]) -> RankedWords:
    return RankedWords(np.array(ids, dtype=np.int64), words, strengths)


def test_names_and_lookups_follow_the_published_code() -> None:
    assert imagenet_word("great_white_shark") == "GREAT WHITE SHARK"
    assert imagenet_word("great white shark") == "GREAT WHITE SHARK"
    assert lookup_word("GREAT WHITE SHARK") == "SHARK" and lookup_word("AQUARIUM FISH") == "FISH"
    assert label_lookups(
        ["T-shirt/top", "aquarium_fish"], frozenset({"FISH", "SHIRT"}), {"T-shirt/top": ["SHIRT"]}
    ) == {"T-SHIRT/TOP": "SHIRT"}


def test_predicted_words_are_the_top_10_names_best_first() -> None:
    probabilities = np.zeros((2, 12))
    probabilities[0, :12] = np.linspace(0.12, 0.01, 12)
    probabilities[1, [3, 5]] = [0.5, 0.5]  # a tie: class order; zeros are no words
    names = [f"class_{i}" for i in range(12)]
    names[1] = "class_0"  # two classes with one name: one word, the stronger probability
    words = predicted_words([7, 8], probabilities, names)
    assert words.words[0] == ["CLASS 0", *[f"CLASS {i}" for i in range(2, 11)]]
    assert words.strengths[0][0] == pytest.approx(0.12) and len(words.words[0]) == 10
    assert words.words[1] == ["CLASS 3", "CLASS 5"] and words.strengths[1] == [0.5, 0.5]
    with pytest.raises(SemretError, match="shape"):
        predicted_words([1], probabilities, names)


def test_settings_are_checked() -> None:
    with pytest.raises(SemretError, match="top-iwk must be between 1 and 10"):
        PublishedIwanSettings(top_iwk=11)
    with pytest.raises(SemretError, match=r"label-strength must be in \(0, 1\]"):
        PublishedIwanSettings(label_strength=0.0)


def test_a_hand_built_graph() -> None:
    """Image 1: label shark, predicts GREAT WHITE SHARK .6 and TANK .3; image 2: label fish,
    predicts GOLDFISH .9 (not in the norms: a node without edges)."""
    predicted = ranked([1, 2], [["GREAT WHITE SHARK", "TANK"], ["GOLDFISH"]], [[0.6, 0.3], [0.9]])
    graph = build_published_graph([1, 2], ["shark", "fish"], predicted, NORMS, PublishedIwanSettings(top_wwk=2))
    # base: SHARK, GREAT WHITE SHARK, TANK, FISH, GOLDFISH; associates of SHARK: FISH .3, OCEAN .2
    # (TEETH ties OCEAN at .2 and loses on the word), of TANK: FISH, of FISH: WATER .4, SHARK .1
    assert graph.nodes == ["FISH", "GOLDFISH", "GREAT WHITE SHARK", "OCEAN", "SHARK", "TANK", "WATER"]
    edges = {
        (graph.nodes[a], graph.nodes[b]): s
        for a, b, s in zip(graph.edges.source, graph.edges.target, graph.edges.strength, strict=True)
    }
    assert edges[("SHARK", "FISH")] == edges[("FISH", "SHARK")] == 0.3  # max(.3, .1)
    assert edges[("GREAT WHITE SHARK", "OCEAN")] == 0.5  # max(SHARK->OCEAN .2, OCEAN->SHARK .5)
    assert edges[("OCEAN", "WATER")] == 0.25 and edges[("TANK", "FISH")] == 0.05
    assert ("SHARK", "GREAT WHITE SHARK") not in edges  # one lookup word: the norms have no SHARK -> SHARK
    assert not any("GOLDFISH" in pair for pair in edges)
    assert graph.undirected_edges * 2 == len(graph.edges)
    links = {
        (int(i), graph.nodes[n]): s
        for i, n, s in zip(graph.link_images, graph.link_nodes, graph.link_strengths, strict=True)
    }
    assert links == {
        (1, "SHARK"): 1.0, (1, "GREAT WHITE SHARK"): 0.6, (1, "TANK"): 0.3, (2, "FISH"): 1.0, (2, "GOLDFISH"): 0.9
    }  # fmt: skip
    index = graph.index()
    query = published_query(index, ["TIGER SHARK", "GREAT WHITE SHARK", "GOLDFISH"], [0.5, 0.4, 0.0])
    assert [index.words[w] for w in query.words] == ["GREAT WHITE SHARK"]  # TIGER SHARK is no node; p = 0
    scores, ids = index.search([query], 3)
    assert ids.tolist() == [[1, 2]]  # k is at most the images there are
    # image 2 through GREAT WHITE SHARK -> FISH (.3) -> its label link; OCEAN leads nowhere closer
    np.testing.assert_allclose(-scores[0, :2], [1 / 0.4 + 1 / 0.6, 1 / 0.4 + 1 / 0.3 + 1 / 1.0])


def test_top_iwk_and_label_strength() -> None:
    predicted = ranked([1, 2], [["SHARK", "TANK"], ["GOLDFISH"]], [[0.9, 0.3], [0.9]])
    graph = build_published_graph(
        [1, 2], ["shark", None], predicted, NORMS, PublishedIwanSettings(top_iwk=1, label_strength=0.8)
    )
    links = {
        (int(i), graph.nodes[n]): s
        for i, n, s in zip(graph.link_images, graph.link_nodes, graph.link_strengths, strict=True)
    }
    assert links == {(1, "SHARK"): 0.9, (2, "GOLDFISH"): 0.9}  # label and name are one node: the stronger link


def test_an_empty_query_reaches_nothing() -> None:
    graph = build_published_graph([1], ["shark"], ranked([1], [["SHARK"]], [[0.5]]), NORMS, PublishedIwanSettings())
    index = graph.index()
    scores, ids = index.search([published_query(index, ["ZEBRA"], [0.9])], 2)
    assert ids.tolist() == [[-1]] and np.isneginf(scores).all()


VOCABULARY = ["SHARK", "FISH", "WATER", "OCEAN", "TANK", "TEETH", "BOWL", "SEA"]
NAMES = ["GREAT WHITE SHARK", "GOLDFISH", "FISH TANK", "WATER", "SEA", "BOWL", "SHARK", "ZEBRA"]


@st.composite
def published_cases(draw: st.DrawFn) -> tuple:
    """Random norms (repeated strengths: ties), images with labels and names, queries."""
    values = st.sampled_from([0.1, 0.2, 0.25, 0.5, 1.0])
    pairs = draw(st.lists(st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(VOCABULARY), values), max_size=30))
    unique = {(c, t): s for c, t, s in pairs if c != t}
    norms = ForwardNorms([c for c, _ in unique], [t for _, t in unique], np.array(list(unique.values())))
    n = draw(st.integers(1, 8))
    ids = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n, unique=True))
    labels = draw(st.lists(st.sampled_from(["shark", "aquarium_fish", "sea", None]), min_size=n, max_size=n))
    words, strengths = [], []
    for _ in range(n):
        chosen = draw(st.lists(st.sampled_from(NAMES), max_size=5, unique=True))
        words.append(chosen)
        strengths.append([draw(values) for _ in chosen])
    setting = PublishedIwanSettings(draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(values))
    queries = []
    for _ in range(draw(st.integers(1, 4))):
        chosen = draw(st.lists(st.sampled_from(NAMES), max_size=10, unique=True))
        queries.append((chosen, [draw(values) for _ in chosen]))
    return ids, labels, RankedWords(np.array(ids, dtype=np.int64), words, strengths), norms, setting, queries


@settings(max_examples=150, deadline=None)
@given(published_cases(), st.integers(1, 6), st.booleans())
def test_fast_search_equals_networkx_on_the_full_graph(case: tuple, k: int, leave_out: bool) -> None:
    ids, labels, predicted, norms, setting, queries = case
    graph = build_published_graph(ids, labels, predicted, norms, setting)
    reference = ReferencePublishedIwan(ids, labels, predicted, norms, setting)
    assert graph.nodes == reference.nodes
    index = graph.index()
    weighted = [published_query(index, names, strengths) for names, strengths in queries]
    if not len(graph.link_images):  # no image has a label or a word: the contract's empty error
        with pytest.raises(SemretError, match="has no images"):
            index.search(weighted, k)
        return
    exclude = [ids[row % len(ids)] for row in range(len(queries))] if leave_out else None
    scores, found = index.search(weighted, k, exclude_ids=exclude)
    expected_distances, expected_ids = reference.search(queries, k, exclude)
    width = found.shape[1]
    np.testing.assert_array_equal(found, expected_ids[:, :width])
    np.testing.assert_array_equal(index.to_distance(scores), expected_distances[:, :width])


def test_fallback_lookups_give_label_nodes_edges() -> None:
    norms = ForwardNorms(["SHIRT"], ["PANTS"], np.array([0.6]))
    lookups = label_lookups(["T-shirt/top"], frozenset({"SHIRT", "PANTS"}), {"T-shirt/top": ["SHIRT"]})
    predicted = ranked([1], [["JERSEY"]], [[0.7]])
    graph = build_published_graph([1], ["T-shirt/top"], predicted, norms, PublishedIwanSettings(), lookups)
    assert graph.nodes == ["JERSEY", "PANTS", "T-SHIRT/TOP"]
    assert graph.lookups == ["JERSEY", "PANTS", "SHIRT"] and len(graph.edges) == 2
    reference = ReferencePublishedIwan([1], ["T-shirt/top"], predicted, norms, PublishedIwanSettings(), lookups)
    index = graph.index()
    query = published_query(index, ["PANTS"], [0.5])
    scores, found = index.search([query], 1)
    distances, ids = reference.search([(["PANTS"], [0.5])], 1)
    assert found.tolist() == ids.tolist() == [[1]] and -scores[0, 0] == distances[0, 0] == 2 + 1 / 0.6 + 1.0


# --- the ImageNet head ------------------------------------------------------------------------


def test_imagenet_head_on_features_equals_the_network() -> None:
    import torch

    from semret.vision.backbones import make_backbone
    from semret.vision.imagenet import imagenet_class_names, imagenet_predictor, imagenet_probabilities

    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[2] == "great white shark"
    backbone = make_backbone("efficientnet-lite0", "imagenet", 64)
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    batch = backbone.preprocess(images)
    backbone.module.eval()
    with torch.no_grad():
        features = backbone.module(batch).numpy()
        logits = backbone.module.network(batch)  # the full network, head included
    probabilities = imagenet_probabilities(backbone, features)
    assert probabilities.shape == (2, 1000) and probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities, torch.softmax(logits.double(), dim=1).numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    predictor = imagenet_predictor(backbone)
    assert predictor is not None and np.array_equal(predictor(features), probabilities)
    with pytest.raises(SemretError, match=r"features must have shape \(images, 1280\)"):
        imagenet_probabilities(backbone, features[:, :10])
    for name, weights in (("small-cnn", None), ("efficientnet-lite0", "none")):
        headless = make_backbone(name, weights, 32)
        assert headless.imagenet_head is None and imagenet_predictor(headless) is None
        with pytest.raises(SemretError, match="has no ImageNet classifier"):
            imagenet_probabilities(headless, np.zeros((1, headless.feature_dim), dtype=np.float32))


def test_a_whole_network_weights_file_keeps_its_head(tmp_path: Path) -> None:
    import torch
    from torchvision.models import resnet50

    from semret.vision.backbones import make_backbone, torch_seeded

    with torch_seeded(0):
        source = resnet50(weights=None)
    torch.save(source.state_dict(), tmp_path / "full.pth")
    backbone = make_backbone("resnet50", str(tmp_path / "full.pth"), 32)
    assert backbone.imagenet_head is not None
    assert torch.equal(backbone.imagenet_head.weight, source.fc.weight)
    torch.save(backbone.module.state_dict(), tmp_path / "headless.pth")
    assert make_backbone("resnet50", str(tmp_path / "headless.pth"), 32).imagenet_head is None


# --- the eval runner ------------------------------------------------------------------------------


def test_the_eval_runner_reuses_the_stored_words(sqlite_url: str, tmp_path: Path) -> None:
    from semret.app.eval_methods import EvalData
    from semret.app.iwan_published import run_iwan_published, run_iwan_published_with
    from semret.iwan.norms import find_norms_files, read_norms_file
    from semret.sql import migrations
    from semret.sql.engine import make_engine
    from semret.sql.images_store import store_images
    from semret.sql.norms_store import load_norms
    from semret.vision.imagenet import imagenet_class_names

    engine = make_engine(sqlite_url)
    migrations.upgrade(engine)
    load_norms(engine, [read_norms_file(p) for p in find_norms_files([Path(__file__).parent / "fixtures" / "norms"])])
    names = imagenet_class_names()
    granny, orange = names.index("Granny Smith"), names.index("orange")
    store_images(engine, "db", [1, 2, 3], ["apple", "pear", "apple"])

    def probabilities(features: np.ndarray) -> np.ndarray:
        out = np.zeros((len(features), 1000))
        out[:, granny], out[:, orange] = features[:, 0], 1 - features[:, 0]
        return out

    data = EvalData(
        engine, "db", ["apple", "pear"], None, {},  # type: ignore[arg-type]
        np.zeros((0, 1), np.float32), np.zeros(0, np.int64),
        np.array([1, 2, 3]), np.array([[0.9], [0.0], [0.5]], np.float32), np.array([0, 1, 0]),
        np.array([10, 11]), np.array([[0.8], [0.0]], np.float32), np.array([0, 1]),
        False, tmp_path,
    )  # fmt: skip
    with pytest.raises(SemretError, match="needs a backbone with an ImageNet classifier"):
        run_iwan_published(data, 3, None)
    data.imagenet_probabilities = probabilities
    run = run_iwan_published(data, 3, None)
    # query 10: GRANNY SMITH .8 (images 1, 3) and ORANGE .2 (images 2, 3; ORANGE is a norm word)
    assert run.ids[0].tolist() == [1, 3, 2] and run.ids[1].tolist() == [2, 3, 1]
    assert run.details["params"] == {"top_iwk": 4, "top_wwk": 4, "label_strength": 1.0, "ranker": "sql"}
    assert run.details["spec"].startswith("iwan-published:") and run.details["query_words_mean"] == 1.5
    assert run.details["graph"]["images"] == 3 and run.details["graph"]["image_links"] == 3 + 5
    data.params["iwan-published"] = {"top_iwk": 1, "ranker": "memory"}
    swept = run_iwan_published_with(data, 3, None, probabilities)
    assert swept.details["graph"]["image_links"] == 3 + 3 and swept.details["database_words_stored"] == 3
    data.params["iwan-published"] = {"top_iwk": 1, "ranker": "gpu"}
    with pytest.raises(SemretError, match="ranker must be 'sql' or 'memory'"):
        run_iwan_published(data, 3, None)
    engine.dispose()
