"""The retrieval methods that `semret eval` compares, each run the same way: build on the database
images (timed), then search every query one at a time (each query timed), giving each query's
ranked database ids with the query itself left out.

- ``exact``: exact cosine kNN on the backbone features (the baseline).
- ``lsh``, ``kmeans``, ``neural-lsh``: the vector indexes of `semret.indexes` on the same features.
- ``hash``: semantic hashing (Barz & Denzler 2019): Hamming ranking of the 48-bit codes stored in
  the database (in PostgreSQL with bit_count; on SQLite the stored codes are loaded once).
- ``hash-rerank``: the Hamming shortlist re-ranked by the cosine of the stored class embeddings.
- ``iwan``: the image-word association network built in the store from the classifier's words and
  the USF norms, searched with Dijkstra (the image ranking done in SQL by default).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.errors import SemretError
from semret.evaluation.scoring import drop_query_ids
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.hamming import HammingIndex
from semret.hashing.hasher import SemanticHasher
from semret.hashing.retrieval import SemanticHashIndex
from semret.indexes import make_index
from semret.indexes.base import index_class
from semret.iwan.graph import IwanSettings
from semret.iwan.index import WeightedWords
from semret.iwan.links import ranked_words_from_probabilities
from semret.iwan.vocabulary import Vocabulary
from semret.sql.hash_store import hamming_search_in_db, load_hashes, register_model, store_hashes
from semret.sql.images_store import store_image_words
from semret.sql.iwan_store import SqlImageRanker, build_iwan_graph, load_iwan
from semret.sql.norms_store import known_words
from semret.vision.classifier import FeatureClassifier
from semret.vision.hierarchy import ClassHierarchy

#: Every method, in the order tables show them.
METHODS = ("exact", "hash", "hash-rerank", "lsh", "kmeans", "neural-lsh", "iwan")
#: Index parameters for `semret eval` where the index defaults are made for other uses: LSH with
#: 16 bits in one table finds too few of k = 250 neighbours in 10,000 images, so fewer bits and more
#: tables (with one probe) are used; k-means gets one cluster per class (from the labels).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lsh": {"n_bits": 8, "n_tables": 8, "n_probes": 1},
    "kmeans": {"n_probe": 1},
    "neural-lsh": {},
    "hash": {"n_bits": 48, "epochs": 30},
    "iwan": {"top_iwk": 4, "top_wwk": 4, "ranker": "sql"},
    "classifier": {"hidden": 0, "epochs": 30},
}

Progress = Callable[[str, int, int], None]


@dataclass
class EvalData:
    """Everything the methods share: the store, the classes, and the features of the training
    images, the database images and the queries (database ids sorted)."""

    engine: Engine
    collection: str
    class_names: list[str]
    hierarchy: ClassHierarchy
    aliases: dict[str, list[str]]
    train_features: npt.NDArray[np.float32]
    train_labels: npt.NDArray[np.int64]
    database_ids: npt.NDArray[np.int64]
    database_features: npt.NDArray[np.float32]
    database_labels: npt.NDArray[np.int64]
    query_ids: npt.NDArray[np.int64]
    query_features: npt.NDArray[np.float32]
    query_labels: npt.NDArray[np.int64]
    queries_in_database: bool
    work_dir: Path
    #: Names the features (backbone, weights, input size), so models trained on them are told apart.
    feature_tag: str = "features"
    seed: int = 0
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What methods of one run share (the hash model, trained once for "hash" and "hash-rerank").
    shared: dict[str, Any] = field(default_factory=dict)

    def method_params(self, method: str) -> dict[str, Any]:
        """The defaults of a method with the user's overrides."""
        return {**DEFAULT_PARAMS.get(method, {}), **self.params.get(method, {})}

    def database_label_names(self) -> list[str | None]:
        return [self.class_names[i] for i in self.database_labels]


@dataclass
class MethodRun:
    """One method's output: ranked database ids per query (-1 padded), the time to build it, each
    query's time, and facts worth reporting (the parameters used, a classifier's accuracy...)."""

    ids: npt.NDArray[np.int64]
    build_seconds: float
    query_seconds: npt.NDArray[np.float64]
    details: dict[str, Any] = field(default_factory=dict)


def _timed_queries(
    n: int, search: Callable[[int], npt.NDArray[np.int64]], k: int, stage: str, progress: Progress | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Run ``search(query position)`` for every query, timing each; rows of k ids."""
    ids = np.full((n, k), -1, dtype=np.int64)
    seconds = np.zeros(n)
    for row in range(n):
        start = time.perf_counter()
        found = search(row)
        seconds[row] = time.perf_counter() - start
        ids[row, : min(k, len(found))] = found[:k]
        if progress and (row % 64 == 63 or row == n - 1):
            progress(stage, row + 1, n)
    return ids, seconds


def _search_width(data: EvalData, k: int) -> int:
    """How many results to ask for so that k remain once the query itself is left out."""
    return k + 1 if data.queries_in_database else k


def _finish(data: EvalData, ids: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    return drop_query_ids(ids, data.query_ids, k) if data.queries_in_database else ids[:, :k]


def run_vector_index(kind: str, data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """exact / lsh / kmeans / neural-lsh: fit and fill the index on the database features."""
    params = data.method_params(kind)
    accepted = set(inspect.signature(index_class(kind)).parameters) - {"dim"}
    if "seed" in accepted:
        params.setdefault("seed", data.seed)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise SemretError(f"{kind} has no parameter {', '.join(unknown)}")
    start = time.perf_counter()
    index = make_index(kind, data.database_features.shape[1], **params)
    if index.needs_fit:
        index.fit(data.database_features, data.database_labels)
    index.add(data.database_ids, data.database_features)
    built = time.perf_counter() - start
    width = _search_width(data, k)
    candidates = np.zeros(len(data.query_ids), dtype=np.int64)

    def search(row: int) -> npt.NDArray[np.int64]:
        _, found = index.search(data.query_features[row : row + 1], width)
        candidates[row] = index.last_candidates[0]
        return found[0]

    ids, seconds = _timed_queries(len(data.query_ids), search, width, kind, progress)
    details = {"params": index.params(), "mean_candidates": float(candidates.mean())}
    return MethodRun(_finish(data, ids, k), built, seconds, details)


@dataclass
class _HashModel:
    """The trained hasher and the collection's codes, stored and read back from the store."""

    hasher: SemanticHasher
    build_seconds: float
    query_embeddings: npt.NDArray[np.float32]
    query_codes: npt.NDArray[np.uint8]
    details: dict[str, Any]
    stored: Any
    model: Any


def _hash_model(data: EvalData, progress: Progress | None) -> _HashModel:
    """Train the hash network on the training features (once per run) and store the database's codes."""
    if "hash" in data.shared:
        return data.shared["hash"]  # type: ignore[no-any-return]
    params = data.method_params("hash")
    shortlist = params.pop("shortlist", None)
    start = time.perf_counter()
    embeddings = class_embeddings(data.hierarchy, data.class_names)
    hasher = SemanticHasher(seed=data.seed, **params)
    hasher.fit(data.train_features, data.train_labels, embeddings, data.class_names, progress=progress)
    checkpoint = data.work_dir / "hash-model.pt"
    hasher.save(checkpoint)
    model = register_model(data.engine, f"{data.collection}-hash-{data.feature_tag}", hasher, checkpoint)
    store_hashes(
        data.engine,
        model,
        data.collection,
        data.database_ids,
        hasher.encode(data.database_features),
        data.database_label_names(),
    )
    stored = load_hashes(data.engine, model, data.collection)
    built = time.perf_counter() - start
    queries = hasher.encode(data.query_features)
    details = {
        "params": {**hasher.config.__dict__, "shortlist": shortlist},
        "model": model.name,
        "final_loss": hasher.loss_history_[-1],
        "distinct_database_codes": len(np.unique(stored.codes, axis=0)),
    }
    data.shared["hash"] = _HashModel(hasher, built, queries.embeddings, queries.codes, details, stored, model)
    return data.shared["hash"]  # type: ignore[no-any-return]


def run_hash(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """Hamming ranking of the stored codes: in PostgreSQL per query; on SQLite in memory."""
    trained = _hash_model(data, progress)
    in_database = data.engine.dialect.name == "postgresql"
    index = HammingIndex(trained.model.n_bits)
    if not in_database:  # PostgreSQL searches its own copy of the codes
        index.add(trained.stored.image_ids, trained.stored.codes)
    width = _search_width(data, k)

    def search(row: int) -> npt.NDArray[np.int64]:
        code = trained.query_codes[row]
        if in_database:
            exclude = int(data.query_ids[row]) if data.queries_in_database else None
            _, found = hamming_search_in_db(data.engine, trained.model, data.collection, code, k, exclude)
            return np.concatenate([found, [-1]]) if data.queries_in_database else found
        _, found = index.search(code[None, :], width)
        return found[0]

    ids, seconds = _timed_queries(len(data.query_ids), search, width, "hash", progress)
    details = {**trained.details, "searched_in": "postgresql" if in_database else "memory (codes read from the store)"}
    return MethodRun(_finish(data, ids, k), trained.build_seconds, seconds, details)


def run_hash_rerank(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """The Hamming shortlist of the stored codes, re-ranked by the cosine of the stored embeddings."""
    trained = _hash_model(data, progress)
    width = _search_width(data, k)
    shortlist = trained.details["params"]["shortlist"] or 2 * width
    index = SemanticHashIndex(trained.model.n_bits, trained.model.embedding_dim, "rerank", shortlist=shortlist)
    index.add(trained.stored.image_ids, trained.stored.embeddings, trained.stored.codes)

    def search(row: int) -> npt.NDArray[np.int64]:
        _, found = index.search(trained.query_embeddings[row : row + 1], trained.query_codes[row : row + 1], width)
        return found[0]

    ids, seconds = _timed_queries(len(data.query_ids), search, width, "hash-rerank", progress)
    details = {**trained.details, "shortlist": shortlist}
    return MethodRun(_finish(data, ids, k), trained.build_seconds, seconds, details)


def run_iwan(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """Classifier words -> image words in the store -> IWAN graph -> Dijkstra per query."""
    params = data.method_params("iwan")
    ranker_kind = params.pop("ranker")
    if ranker_kind not in ("sql", "memory"):
        raise SemretError(f"iwan.ranker must be 'sql' or 'memory', got {ranker_kind!r}")
    settings = IwanSettings(**params)
    classifier_params = data.method_params("classifier")
    start = time.perf_counter()
    classifier = FeatureClassifier(seed=data.seed, **classifier_params)
    classifier.fit(data.train_features, data.train_labels, len(data.class_names), progress=progress)
    vocabulary = Vocabulary.build(data.class_names, known_words(data.engine), data.aliases)
    vocabulary.require_complete()
    class_words = vocabulary.class_words(data.class_names)
    ranked = ranked_words_from_probabilities(
        data.database_ids, classifier.predict_proba(data.database_features), class_words, settings.top_iwk
    )
    store_image_words(data.engine, data.collection, ranked)
    report = build_iwan_graph(data.engine, data.collection, settings)
    stored = load_iwan(data.engine, data.collection)
    built = time.perf_counter() - start
    index = stored.index
    ranker = SqlImageRanker(data.engine, stored) if ranker_kind == "sql" else None
    query_probabilities = classifier.predict_proba(data.query_features)
    query_words = ranked_words_from_probabilities(data.query_ids, query_probabilities, class_words, settings.top_iwk)

    def query(row: int) -> WeightedWords:
        return index.query_from_words(list(zip(query_words.words[row], query_words.strengths[row], strict=True)))

    def search(row: int) -> npt.NDArray[np.int64]:
        exclude = [int(data.query_ids[row])] if data.queries_in_database else None
        _, found = index.search([query(row)], k, exclude=exclude, ranker=ranker)
        return found[0]

    ids, seconds = _timed_queries(len(data.query_ids), search, k, "iwan", progress)
    accuracy = float(np.mean(np.argmax(query_probabilities, axis=1) == data.query_labels))
    details = {
        "params": {**settings.__dict__, "ranker": ranker_kind},
        "classifier": {**classifier_params, "query_accuracy": accuracy},
        "graph": {"words": report.words, "word_edges": report.word_edges, "image_links": report.image_links},
        "words": {label: list(words) for label, words in zip(data.class_names, class_words, strict=True)},
    }
    return MethodRun(ids, built, seconds, details)


RUNNERS: dict[str, Callable[[EvalData, int, Progress | None], MethodRun]] = {
    "exact": lambda data, k, progress: run_vector_index("exact", data, k, progress),
    "lsh": lambda data, k, progress: run_vector_index("lsh", data, k, progress),
    "kmeans": lambda data, k, progress: run_vector_index("kmeans", data, k, progress),
    "neural-lsh": lambda data, k, progress: run_vector_index("neural-lsh", data, k, progress),
    "hash": run_hash,
    "hash-rerank": run_hash_rerank,
    "iwan": run_iwan,
}


def parse_methods(text: str) -> list[str]:
    """``"exact,hash"`` -> the methods, checked, in the order given (``all`` for every method)."""
    names = list(METHODS) if text.strip() == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in RUNNERS]
    if unknown or not names:
        raise SemretError(f"unknown method(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise SemretError(f"a method is given twice: {text}")
    return names


def iter_runs(data: EvalData, methods: list[str], k: int, progress: Progress | None) -> Iterator[tuple[str, MethodRun]]:
    """Each method's run, in order; the hash model is trained once for both hash methods."""
    try:
        for method in methods:
            yield method, RUNNERS[method](data, k, progress)
    finally:
        data.shared.clear()
