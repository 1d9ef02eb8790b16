"""The retrieval methods that `semret eval` compares, each run the same way: build on the database
images (timed), then search every query one at a time (each query timed), giving each query's
ranked database ids with the query itself left out.

- ``exact``: exact cosine kNN on the backbone features (the baseline).
- ``lsh``, ``kmeans``, ``neural-lsh``, ``neural-lsh-knn``, ``fourier-lsh``: the vector indexes of
  `semret.indexes` on the same features.
- ``hash``: semantic hashing (Barz & Denzler 2019): Hamming ranking of the 48-bit codes stored in
  the database (in PostgreSQL with bit_count; on SQLite the stored codes are loaded once).
- ``hash-rerank``: the Hamming shortlist re-ranked by the cosine of the stored class embeddings.
- ``cimon``: CIMON (Luo et al. 2021), hash codes learned without labels from augmented views of the
  training images (`semret.app.cimon`), stored and Hamming-ranked in the store like ``hash``'s.
- ``iwan``: the image-word association network built in the store from the classifier's words and
  the USF norms, searched with Dijkstra (the image ranking done in SQL by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from semret.app.iwan_published import run_iwan_published
from semret.core.search import SearcherBase
from semret.core.spec import Spec, format_spec, parse_spec, parse_value
from semret.core.validation import check_count
from semret.errors import SemretError
from semret.evaluation.report import CIMON_MODEL_FILE, HASH_MODEL_FILE, IWAN_CLASSIFIER_FILE
from semret.evaluation.runs import METHODS, MethodRun
from semret.hashing.class_embeddings import class_embeddings
from semret.hashing.hasher import EncodedImages, SemanticHasher
from semret.hashing.retrieval import HashQueries, SemanticHashIndex
from semret.indexes.base import check_index_params, index_class, make_index_from_spec
from semret.iwan.graph import IwanSettings
from semret.iwan.index import WeightedWords
from semret.iwan.links import ranked_words_from_probabilities
from semret.iwan.published import PublishedIwanSettings
from semret.iwan.vocabulary import Vocabulary
from semret.sql.hash_store import (
    StoredHashes,
    StoredModel,
    hamming_searcher,
    load_hashes,
    register_model,
    store_hashes,
)
from semret.sql.images_store import store_image_words
from semret.sql.iwan_store import build_iwan_graph, iwan_searcher
from semret.sql.norms_store import known_words
from semret.vision.classifier import FeatureClassifier
from semret.vision.hierarchy import ClassHierarchy

#: Index parameters for `semret eval` where the index defaults are made for other uses: LSH with
#: 16 bits in one table finds too few of k = 250 neighbours in 10,000 images, so fewer bits and more
#: tables (with one probe) are used; k-means gets one cluster per class (from the labels).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lsh": {"n_bits": 8, "n_tables": 8, "n_probes": 1},
    "kmeans": {"n_probe": 1},
    "neural-lsh": {},
    "neural-lsh-knn": {},
    "fourier-lsh": {},
    "hash": {"n_bits": 48, "epochs": 30},
    # as long as the semantic hash's codes, for a like-for-like comparison; the rest the paper's
    "cimon": {"n_bits": 48, "n_views": 4},
    "iwan": {"top_iwk": 4, "top_wwk": 4, "ranker": "sql"},
    "iwan-published": {"top_iwk": 4, "top_wwk": 4, "label_strength": 1.0, "ranker": "sql"},
    "classifier": {"hidden": 0, "epochs": 30},
}

Progress = Callable[[str, int, int], None]
#: Where a stored model's codes were searched, as results.json says it.
SEARCHED_IN = {"postgresql": "postgresql", "memory": "memory (codes read from the store)"}


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
    #: Features -> the backbone's ImageNet class probabilities (n, 1000), for iwan-published; None
    #: when the backbone has no ImageNet head.
    imagenet_probabilities: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]] | None = None
    #: (rows of the training images, views, seed, progress) -> their augmented views' features
    #: (rows, views, d), for cimon; None where the images are not at hand.
    train_views: Callable[[npt.NDArray[np.int64], int, int, Progress | None], npt.NDArray[np.float32]] | None = None
    #: The backbone the features came through ({"backbone", "weights", "image_size"}), written into
    #: the checkpoints of models that encode features (cimon), so that `hash encode` uses it.
    feature_source: dict[str, Any] = field(default_factory=dict)
    #: Whether a convention counts the query among its own results (then `_timed_queries` keeps
    #: the rankings with the query too).
    keep_query: bool = False
    #: What methods of one run share (the hash model, trained once for "hash" and "hash-rerank").
    shared: dict[str, Any] = field(default_factory=dict)

    def method_params(self, method: str) -> dict[str, Any]:
        """The defaults of a method with the user's overrides."""
        return {**DEFAULT_PARAMS.get(method, {}), **self.params.get(method, {})}

    def database_label_names(self) -> list[str | None]:
        return [self.class_names[i] for i in self.database_labels]


@dataclass(frozen=True)
class TimedQueries:
    """Every query's ranked ids (queries, k; -1 padded), its time and the candidates it scored, and
    the rankings with the query allowed among its results where a convention asked for them."""

    ids: npt.NDArray[np.int64]
    seconds: npt.NDArray[np.float64]
    candidates: npt.NDArray[np.int64]
    ids_with_query: npt.NDArray[np.int64] | None

    def run(self, build_seconds: float, details: dict[str, Any]) -> MethodRun:
        """The `MethodRun` of these queries."""
        return MethodRun(self.ids, build_seconds, self.seconds, details, self.ids_with_query)


def _timed_queries(
    data: EvalData, searcher: SearcherBase, queries: Callable[[int], Any], k: int, stage: str, progress: Progress | None
) -> TimedQueries:
    """Search each query on its own through the search contract, timing each.

    In the test protocol the query image is left out (``exclude_ids``), so it never counts among
    its own results. Where a convention counts the query (``data.keep_query``), each query is also
    searched, untimed, without leaving it out: the ranking in which the query may appear."""
    n = len(data.query_ids)
    ids = np.full((n, k), -1, dtype=np.int64)
    keep_query = data.keep_query and data.queries_in_database
    with_query = np.full((n, k), -1, dtype=np.int64) if keep_query else None
    seconds = np.zeros(n)
    candidates = np.zeros(n, dtype=np.int64)
    for row in range(n):
        exclude = data.query_ids[row : row + 1] if data.queries_in_database else None
        start = time.perf_counter()
        _, found = searcher.search(queries(row), k, exclude_ids=exclude)
        seconds[row] = time.perf_counter() - start
        ids[row, : found.shape[1]] = found[0]
        candidates[row] = searcher.last_candidates[0]
        if with_query is not None:
            _, found = searcher.search(queries(row), k)
            with_query[row, : found.shape[1]] = found[0]
        if progress and (row % 64 == 63 or row == n - 1):
            progress(stage, row + 1, n)
    return TimedQueries(ids, seconds, candidates, with_query)


def vector_index_spec(kind: str, data: EvalData) -> Spec:
    """The spec of a vector index method: its defaults, the user's settings, the run's seed."""
    params = data.method_params(kind)
    if "seed" in index_class(kind).param_names():
        params.setdefault("seed", data.seed)
    return Spec(kind, params)


def run_vector_index(kind: str, data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """exact / lsh / kmeans / neural-lsh: fit and fill the index on the database features."""
    spec = vector_index_spec(kind, data)
    start = time.perf_counter()
    index = make_index_from_spec(spec, data.database_features.shape[1])
    if index.needs_fit:
        index.fit(data.database_features, data.database_labels)
    index.add(data.database_ids, data.database_features)
    built = time.perf_counter() - start
    timed = _timed_queries(data, index, lambda row: data.query_features[row : row + 1], k, kind, progress)
    params = index.get_params()
    params.pop("dim")
    details: dict[str, Any] = {"spec": index.spec, "params": params, "mean_candidates": float(timed.candidates.mean())}
    code_bits = getattr(index, "code_bits", None)  # the learned LSH kinds' one code per point
    if code_bits is not None:
        n_bits = int(params["n_bits"])
        train, queries = (np.packbits(code_bits(x), axis=1) for x in (data.train_features, data.query_features))
        details["code_classification_accuracy"] = _code_accuracy(data, train, queries, n_bits)
    return timed.run(built, details)


def _code_accuracy(
    data: EvalData, train_codes: npt.NDArray[np.uint8], query_codes: npt.NDArray[np.uint8], n_bits: int
) -> float:
    """Test accuracy of a classifier trained on the training images' codes, tested on the queries'
    (as `semret classify --codes`; seed 004's classification from hash codes)."""
    from semret.app.code_classify import accuracy_from_codes

    return accuracy_from_codes(
        train_codes, data.train_labels, query_codes, data.query_labels, n_bits, len(data.class_names), seed=data.seed
    )


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
    checkpoint = data.work_dir / HASH_MODEL_FILE
    hasher.save(checkpoint)
    model, stored = _store_database_codes(
        data, f"{data.collection}-hash-{data.feature_tag}", hasher.get_params(), checkpoint,
        hasher.encode(data.database_features),
    )  # fmt: skip
    built = time.perf_counter() - start
    queries = hasher.encode(data.query_features)
    details = {
        "params": {**hasher.get_params(), "shortlist": shortlist},
        "model": model.name,
        "final_loss": hasher.loss_history_[-1],
        "distinct_database_codes": len(np.unique(stored.codes, axis=0)),
        "code_classification_accuracy": _code_accuracy(
            data, hasher.encode(data.train_features).codes, queries.codes, hasher.n_bits
        ),
    }
    data.shared["hash"] = _HashModel(hasher, built, queries.embeddings, queries.codes, details, stored, model)
    return data.shared["hash"]  # type: ignore[no-any-return]


def _store_database_codes(
    data: EvalData, name: str, params: dict[str, Any], checkpoint: Path, encoded: EncodedImages
) -> tuple[StoredModel, StoredHashes]:
    """Register a model trained in this run and store the database images' embeddings and codes
    under it; what the store holds, read back."""
    model = register_model(
        data.engine, name, params["n_bits"],
        int(encoded.embeddings.shape[1]), params, checkpoint,
    )  # fmt: skip
    store_hashes(
        data.engine, model, data.collection, data.database_ids, encoded.embeddings, encoded.codes,
        data.database_label_names(),
    )  # fmt: skip
    return model, load_hashes(data.engine, model, data.collection)


def run_hash(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """Hamming ranking of the stored codes, where the store searches them (`hamming_searcher`:
    in PostgreSQL, else in memory on the codes read back)."""
    trained = _hash_model(data, progress)
    searcher = hamming_searcher(data.engine, trained.model, data.collection)
    timed = _timed_queries(data, searcher, lambda row: trained.query_codes[row : row + 1], k, "hash", progress)
    where = SEARCHED_IN[searcher.backend]
    details = {**trained.details, "spec": format_spec("hash", _hash_spec_params(trained)), "searched_in": where}
    return timed.run(trained.build_seconds, details)


def _hash_spec_params(trained: _HashModel) -> dict[str, Any]:
    return {k: v for k, v in trained.details["params"].items() if v is not None}


def run_hash_rerank(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """The Hamming shortlist of the stored codes, re-ranked by the cosine of the stored embeddings."""
    trained = _hash_model(data, progress)
    shortlist = trained.details["params"]["shortlist"]
    index = SemanticHashIndex(trained.model.n_bits, trained.model.embedding_dim, "rerank", shortlist=shortlist)
    index.add(trained.stored.image_ids, trained.stored.embeddings, trained.stored.codes)

    def query(row: int) -> HashQueries:
        return HashQueries(trained.query_embeddings[row : row + 1], trained.query_codes[row : row + 1])

    timed = _timed_queries(data, index, query, k, "hash-rerank", progress)
    details = {
        **trained.details,
        "spec": format_spec("hash-rerank", _hash_spec_params(trained)),
        "shortlist": shortlist or 2 * (k + int(data.queries_in_database)),
    }
    return timed.run(trained.build_seconds, details)


def run_cimon(data: EvalData, k: int, progress: Progress | None) -> MethodRun:
    """CIMON without labels on the training images' features and their augmented views; the
    database's codes stored, then Hamming-ranked where the store searches them (as ``hash``)."""
    from semret.app.cimon import training_rows
    from semret.hashing.cimon import CimonHasher

    if data.train_views is None:
        raise SemretError("cimon needs the training images (for their augmented views): run it through semret eval")
    params = data.method_params("cimon")
    n_views = params.pop("n_views")
    start = time.perf_counter()
    hasher = CimonHasher(seed=data.seed, **params)
    rows = training_rows(len(data.train_features), hasher.graph_size, hasher.seed)
    views = data.train_views(rows, n_views, hasher.seed, progress)
    viewed = time.perf_counter()
    hasher.fit(data.train_features[rows], views, progress=progress)
    trained = time.perf_counter()
    checkpoint = data.work_dir / CIMON_MODEL_FILE
    hasher.save(checkpoint, {**data.feature_source, "views": n_views})
    model, stored = _store_database_codes(
        data, f"{data.collection}-cimon-{data.feature_tag}", hasher.get_params(), checkpoint,
        hasher.encode_images(data.database_features),
    )  # fmt: skip
    built = time.perf_counter() - start
    query_codes = hasher.encode(data.query_features)
    searcher = hamming_searcher(data.engine, model, data.collection)
    timed = _timed_queries(data, searcher, lambda row: query_codes[row : row + 1], k, "cimon", progress)
    assert hasher.graph_ is not None
    details = {
        "spec": format_spec("cimon", {**hasher.get_params(), "n_views": n_views}),
        "params": {**hasher.get_params(), "n_views": n_views},
        "model": model.name,
        "final_loss": hasher.loss_history_[-1],
        "training_images": len(rows),
        "graph_positive_rate": hasher.graph_.positive_rate,
        "view_seconds": viewed - start,
        "train_seconds": trained - viewed,
        "distinct_database_codes": len(np.unique(stored.codes, axis=0)),
        "code_classification_accuracy": _code_accuracy(
            data, hasher.encode(data.train_features), query_codes, hasher.n_bits
        ),
        "searched_in": SEARCHED_IN[searcher.backend],
    }
    return timed.run(built, details)


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
    # kept with the report, so that `semret serve --report` answers an uploaded image through it
    classifier.save(data.work_dir / IWAN_CLASSIFIER_FILE, data.feature_source)
    vocabulary = Vocabulary.build(data.class_names, known_words(data.engine), data.aliases)
    vocabulary.require_complete()
    class_words = vocabulary.class_words(data.class_names)
    ranked = ranked_words_from_probabilities(
        data.database_ids, classifier.predict_proba(data.database_features), class_words, settings.top_iwk
    )
    store_image_words(data.engine, data.collection, ranked)
    report = build_iwan_graph(data.engine, data.collection, settings)
    stored = iwan_searcher(data.engine, data.collection, in_sql=ranker_kind == "sql")
    built = time.perf_counter() - start
    index = stored.index
    query_probabilities = classifier.predict_proba(data.query_features)
    query_words = ranked_words_from_probabilities(data.query_ids, query_probabilities, class_words, settings.top_iwk)

    def query(row: int) -> list[WeightedWords]:
        return [index.query_from_words(list(zip(query_words.words[row], query_words.strengths[row], strict=True)))]

    timed = _timed_queries(data, index, query, k, "iwan", progress)
    accuracy = float(np.mean(np.argmax(query_probabilities, axis=1) == data.query_labels))
    details = {
        "spec": format_spec("iwan", {**settings.__dict__, "ranker": ranker_kind}),
        "params": {**settings.__dict__, "ranker": ranker_kind},
        "classifier": {**classifier_params, "query_accuracy": accuracy},
        "graph": {"words": report.words, "word_edges": report.word_edges, "image_links": report.image_links},
        "words": {label: list(words) for label, words in zip(data.class_names, class_words, strict=True)},
    }
    return timed.run(built, details)


RUNNERS: dict[str, Callable[[EvalData, int, Progress | None], MethodRun]] = {
    "exact": lambda data, k, progress: run_vector_index("exact", data, k, progress),
    "lsh": lambda data, k, progress: run_vector_index("lsh", data, k, progress),
    "kmeans": lambda data, k, progress: run_vector_index("kmeans", data, k, progress),
    "neural-lsh": lambda data, k, progress: run_vector_index("neural-lsh", data, k, progress),
    "neural-lsh-knn": lambda data, k, progress: run_vector_index("neural-lsh-knn", data, k, progress),
    "fourier-lsh": lambda data, k, progress: run_vector_index("fourier-lsh", data, k, progress),
    "hash": run_hash,
    "hash-rerank": run_hash_rerank,
    "cimon": run_cimon,
    "iwan": run_iwan,
    "iwan-published": run_iwan_published,
}


#: The methods that are vector indexes of `semret.indexes` (their parameters are the index's).
VECTOR_METHODS = ("exact", "lsh", "kmeans", "neural-lsh", "neural-lsh-knn", "fourier-lsh")
#: Parameters that a run sets itself (from --seed), not --set.
RUN_PARAMS = frozenset({"seed"})


def parse_method_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set`` values, each ``METHOD.PARAMETER=VALUE`` or a spec ``METHOD:P=V,Q=W`` ->
    {method: {parameter: value}}; values are read as JSON where they parse, else kept as text.
    Only the form is checked here; `check_method_params` checks names and values."""
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        if ":" in item.split("=", 1)[0]:
            spec = parse_spec(item, "--set")
            method, given = spec.kind, spec.params
        else:
            name, _, value = item.partition("=")
            method, _, parameter = name.partition(".")
            if not value or not method.strip() or not parameter.strip():
                raise SemretError(
                    f"--set takes METHOD.PARAMETER=VALUE or METHOD:P=V,... (e.g. lsh.n_bits=12), got {item!r}"
                )
            given = {parameter.strip(): parse_value(value.strip())}
            method = method.strip()
        settings.setdefault(method, {}).update(given)
    return settings


def check_method_params(methods: tuple[str, ...] | list[str], params: dict[str, dict[str, Any]]) -> None:
    """Every method's parameters, names and values, checked before any work starts (a typo in
    ``--set`` fails at once, not after the features and the training)."""
    from semret.hashing.cimon import CimonHasher
    from semret.vision.classifier import FeatureClassifier

    known = {*METHODS, "classifier"}
    unknown = sorted(set(params) - known)
    if unknown:
        hint = " (hash-rerank takes the hash parameters: --set hash.shortlist=...)" if "hash-rerank" in unknown else ""
        raise SemretError(f"--set: unknown method {', '.join(unknown)} (choose from {', '.join(sorted(known))}){hint}")
    for method, given in params.items():
        seeded = sorted(RUN_PARAMS & set(given))
        if seeded:
            raise SemretError(f"--set {method}.{seeded[0]}: the run's --seed sets it")
    for kind in VECTOR_METHODS:
        if kind in methods or kind in params:
            check_index_params(kind, {**DEFAULT_PARAMS.get(kind, {}), **params.get(kind, {})}, f"--set {kind}")
    hash_params = {**DEFAULT_PARAMS["hash"], **params.get("hash", {})}
    shortlist = hash_params.pop("shortlist", None)
    _check_constructor("hash", SemanticHasher, hash_params, SemanticHasher.param_names())
    if shortlist is not None:
        SemanticHashIndex(8, 1, "rerank", shortlist=shortlist)
    cimon_params = {**DEFAULT_PARAMS["cimon"], **params.get("cimon", {})}
    check_count("cimon.n_views", cimon_params.pop("n_views"), 2)
    _check_constructor("cimon", CimonHasher, cimon_params, CimonHasher.param_names())
    iwan_params = {**DEFAULT_PARAMS["iwan"], **params.get("iwan", {})}
    ranker = iwan_params.pop("ranker")
    if ranker not in ("sql", "memory"):
        raise SemretError(f"iwan.ranker must be 'sql' or 'memory', got {ranker!r}")
    _check_constructor("iwan", IwanSettings, iwan_params, list(IwanSettings.__dataclass_fields__))
    published = {**DEFAULT_PARAMS["iwan-published"], **params.get("iwan-published", {})}
    ranker = published.pop("ranker")
    if ranker not in ("sql", "memory"):
        raise SemretError(f"iwan-published.ranker must be 'sql' or 'memory', got {ranker!r}")
    _check_constructor(
        "iwan-published", PublishedIwanSettings, published, list(PublishedIwanSettings.__dataclass_fields__)
    )
    classifier = {**DEFAULT_PARAMS["classifier"], **params.get("classifier", {})}
    _check_constructor("classifier", FeatureClassifier, classifier, FeatureClassifier.param_names())


def _check_constructor(method: str, cls: Any, params: dict[str, Any], accepted: list[str]) -> None:
    """Reject names ``cls`` does not take, and values its constructor refuses."""
    allowed = [name for name in accepted if name not in RUN_PARAMS]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise SemretError(f"--set {method}: no parameter {', '.join(unknown)} (its parameters: {', '.join(allowed)})")
    try:
        cls(**params)
    except (SemretError, TypeError) as exc:
        raise SemretError(f"--set {method}: {exc}") from None


def parse_methods(text: str) -> list[str]:
    """``"exact,hash"`` -> the methods, checked, in the order given; ``all``: none named, which
    `EvalConfig` reads as every method the backbone can run."""
    if text.strip() == "all":
        return []
    names = [m.strip() for m in text.split(",") if m.strip()]
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
