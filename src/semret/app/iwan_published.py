"""The ``iwan-published`` method of `semret eval`: IWAN as it was published (`semret.iwan.published`),
next to semret's own ``iwan`` (`semret.app.eval_methods.run_iwan`).

The words come from the backbone's own ImageNet head on the cached features (no classifier is
trained): each database image's top-10 ImageNet words and their probabilities are stored once
(`semret.sql.images_store.store_imagenet_words`), so a sweep over top-IWK rebuilds only the graph;
the published graph is built in the store and searched through the search contract, one query at a
time, each query linked to all its top-10 words that are nodes of the graph. The published
protocol is ``train-test`` (database = train split, queries = test images).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from semret.core.spec import format_spec
from semret.errors import SemretError
from semret.evaluation.runs import MethodRun
from semret.iwan.index import WeightedWords
from semret.iwan.links import RankedWords
from semret.iwan.published import PREDICTED_WORDS, PublishedIwanSettings, predicted_words, published_query
from semret.sql.images_store import store_imagenet_words
from semret.sql.iwan_store import build_published_iwan_graph, iwan_searcher

if TYPE_CHECKING:  # eval_methods imports torch (the hasher): imported where a run needs it
    from semret.app.eval_methods import EvalData, Progress

METHOD = "iwan-published"

Probabilities = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


def run_iwan_published(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """ImageNet words of the backbone -> published IWAN graph in the store -> Dijkstra per query."""
    predict = data.imagenet_probabilities
    if predict is None:
        raise SemretError(
            f"{METHOD} needs a backbone with an ImageNet classifier (efficientnet-lite0, resnet50 or alexnet with "
            "ImageNet weights): this run's backbone has none"
        )
    return run_iwan_published_with(data, k, progress, predict)


def run_iwan_published_with(
    data: EvalData, k: int, progress: Progress | None, imagenet_probabilities: Probabilities
) -> MethodRun:
    """`run_iwan_published` with the features -> ImageNet probabilities function given."""
    from semret.app.eval_methods import _timed_queries
    from semret.vision.imagenet import imagenet_class_names  # torchvision's names

    params = data.method_params(METHOD)  # the defaults (eval_methods.DEFAULT_PARAMS) and --set
    ranker_kind = params.pop("ranker")
    if ranker_kind not in ("sql", "memory"):
        raise SemretError(f"{METHOD}.ranker must be 'sql' or 'memory', got {ranker_kind!r}")
    unknown = sorted(set(params) - {"top_iwk", "top_wwk", "label_strength"})
    if unknown:
        raise SemretError(
            f"unknown {METHOD} parameter {unknown[0]!r}: it takes top_iwk, top_wwk, label_strength, ranker"
        )
    settings = PublishedIwanSettings(**params)
    names = imagenet_class_names()
    start = time.perf_counter()
    words = _database_words(data, imagenet_probabilities, names)
    report = build_published_iwan_graph(data.engine, data.collection, settings, data.aliases)
    stored = iwan_searcher(data.engine, data.collection, in_sql=ranker_kind == "sql")
    built = time.perf_counter() - start
    index = stored.index
    query_words = predicted_words(data.query_ids, imagenet_probabilities(data.query_features), names, PREDICTED_WORDS)
    queries = [
        published_query(index, query_words.words[row], query_words.strengths[row]) for row in range(len(data.query_ids))
    ]

    def query(row: int) -> list[WeightedWords]:
        return [queries[row]]

    timed = _timed_queries(data, index, query, k, METHOD, progress)
    linked = np.array([len(q.words) for q in queries], dtype=np.float64)
    details = {
        "spec": format_spec(METHOD, {**settings.__dict__, "ranker": ranker_kind}),
        "params": {**settings.__dict__, "ranker": ranker_kind},
        "graph": {
            "words": report.words,
            "word_edges": report.word_edges,
            "images": report.images,
            "image_links": report.image_links,
        },
        "query_words_mean": float(linked.mean()) if len(linked) else 0.0,
        "queries_without_words": int((linked == 0).sum()),
        "fallback_lookups": report.fallback_lookups,
        "database_words_stored": words,
    }
    return timed.run(built, details)


def _database_words(data: EvalData, imagenet_probabilities: Probabilities, names: list[str]) -> int:
    """Store the database images' top-10 ImageNet words once per run (a top-IWK sweep reuses them):
    the number of images whose words were stored."""
    key = f"{METHOD}:words:{data.collection}"
    if key not in data.shared:
        ranked: RankedWords = predicted_words(
            data.database_ids, imagenet_probabilities(data.database_features), names, PREDICTED_WORDS
        )
        store_imagenet_words(data.engine, data.collection, ranked)
        data.shared[key] = len(ranked.image_ids)
    return int(data.shared[key])
