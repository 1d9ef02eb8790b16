"""Browse a store: its collections, their images, and queries by any stored method, with the
reasons for each result (`semret.app.explain`). This is the Python API behind `semret serve`.

Methods of a collection: ``iwan`` (its IWAN graph), ``hash-exact:MODEL``, ``hash-hamming:MODEL``
and ``hash-rerank:MODEL`` for each hash model with codes there, and ``index:NAME`` for each vector
index file given for it. A query is a stored image (left out of its own results, as
`semret query`), typed words (IWAN only) or an uploaded image, which goes through the backbone and
models of an evaluation report for the collection (`semret.app.report_models`). The rows are those
of `semret query ... --json` (`semret.app.query`), each with an ``explanation``.

What is read from the store (codes, graphs, indexes) is loaded once and kept: queries of one
server are served from memory, by many threads at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select

from semret.app.explain import class_relation, differing_bits, hierarchy_for, iwan_edges
from semret.app.pixels import CollectionPixels
from semret.app.query import (
    LoadedHash,
    LoadedIndex,
    hash_results,
    iwan_results,
    load_hash_search,
    load_vector_index,
    vector_results,
)
from semret.app.report_models import EvalReport, UploadEncoder, read_report
from semret.app.typed_words import parse_words
from semret.app.uploads import UploadedImage
from semret.errors import NotFoundError, SemretError
from semret.hashing.retrieval import HashQueries
from semret.iwan.index import WeightedWords
from semret.sql.engine import connect
from semret.sql.hash_store import StoredModel
from semret.sql.images_store import CollectionSummary, list_collections
from semret.sql.iwan_store import StoredIwan, image_query, iwan_searcher
from semret.sql.models import Collection, HashModel, Image, ImageHash, IwanGraph
from semret.vision.hierarchy import ClassHierarchy

#: The most results one query may ask for.
MAX_K = 1000
#: Hash modes, by the method names' prefixes.
HASH_MODES = {"hash-exact": "exact", "hash-hamming": "hamming", "hash-rerank": "rerank"}
MODE_TITLES = {"exact": "exact cosine", "hamming": "Hamming", "rerank": "Hamming shortlist + cosine re-rank"}

T = TypeVar("T")


@dataclass(frozen=True)
class Method:
    """A way to query a collection: its key (``hash-rerank:MODEL``...), a title, and what it takes."""

    key: str
    title: str
    kind: str  # "iwan", "hash" or "index"
    takes_words: bool = False
    takes_uploads: bool = False
    model: str | None = None
    mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "takes_words": self.takes_words,
            "takes_uploads": self.takes_uploads,
        }


@dataclass(frozen=True)
class Query:
    """Exactly one of: a stored image's id, words ("winter, cold" or "WINTER:0.8,COLD:0.5"), an upload."""

    image_id: int | None = None
    words: str | None = None
    upload: UploadedImage | None = None

    def describe(self) -> str:
        if self.image_id is not None:
            return f"image {self.image_id}"
        if self.words is not None:
            return f"words {self.words!r}"
        return f"upload {self.upload.name if self.upload else ''}"


@dataclass(frozen=True)
class MethodAnswer:
    """One method's results for a query, and how long the search took (ms)."""

    method: Method
    results: list[dict[str, Any]]
    milliseconds: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.key,
            "title": self.method.title,
            "milliseconds": self.milliseconds,
            "notes": self.notes,
            "results": self.results,
        }


def check_k(k: int, collection_images: int) -> int:
    """``k`` from 1 to `MAX_K`; larger than the collection is allowed (fewer rows come back)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise SemretError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
    return min(k, max(1, collection_images))


class StoreBrowser:
    """A store opened for browsing, with the evaluation reports and vector indexes given for it."""

    def __init__(
        self,
        engine: Engine,
        reports: Sequence[str | Path] = (),
        indexes: Sequence[tuple[str, str | Path]] = (),
    ) -> None:
        self.engine = engine
        self.pixels = CollectionPixels(engine)
        self.reports: dict[str, EvalReport] = {}
        for folder in reports:
            report = read_report(folder)
            if report.name in self.reports:
                raise SemretError(f"two reports are called {report.name!r}: give folders of different names")
            self.reports[report.name] = report
        self._encoders = {name: UploadEncoder(report) for name, report in self.reports.items()}
        self.index_files: dict[str, dict[str, Path]] = {}
        known = {summary.name for summary in list_collections(engine)}
        for collection, file in indexes:
            if collection not in known:
                raise SemretError(f"--index {collection}={file}: no collection {collection!r} in the store")
            if not Path(file).is_file():
                raise SemretError(f"--index {collection}={file}: no such index file")
            name = Path(file).stem
            if name in self.index_files.get(collection, {}):
                raise SemretError(f"two indexes of {collection!r} are called {name!r}: rename one file")
            self.index_files.setdefault(collection, {})[name] = Path(file)
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()

    # --- loading, once per key -----------------------------------------------------------------

    def _once(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        with self._guard:
            if key in self._cache:
                return self._cache[key]  # type: ignore[no-any-return]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]  # type: ignore[no-any-return]

    # --- collections ---------------------------------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """Every collection: images, splits, dataset, hash models, IWAN graph, indexes and reports."""
        return [self._describe(summary) for summary in self._summaries()]

    def _summaries(self) -> list[CollectionSummary]:
        return self._once(("summaries",), lambda: list_collections(self.engine))

    def summary(self, name: str) -> CollectionSummary:
        for summary in self._summaries():
            if summary.name == name:
                return summary
        raise NotFoundError(f"no collection {name!r} in the store")

    def collection(self, name: str) -> dict[str, Any]:
        return self._describe(self.summary(name))

    def _describe(self, summary: CollectionSummary) -> dict[str, Any]:
        name = summary.name
        return {
            "name": name,
            "dataset": summary.dataset,
            "images": summary.images,
            "images_with_words": summary.images_with_words,
            "splits": summary.splits,
            "hash_models": [m.name for m in self._models(name)],
            "iwan_graph": self._graph(name),
            "indexes": sorted(self.index_files.get(name, {})),
            "reports": [r for r, report in self.reports.items() if report.collection == name],
            "methods": [m.as_dict() for m in self.methods(name)],
        }

    def _graph(self, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            with connect(self.engine) as conn:
                row = conn.execute(
                    select(IwanGraph.scheme, IwanGraph.top_iwk, IwanGraph.top_wwk)
                    .join(Collection, Collection.id == IwanGraph.collection_id)
                    .where(Collection.name == name)
                ).one_or_none()
            return None if row is None else {"scheme": row[0], "top_iwk": row[1], "top_wwk": row[2]}

        return self._once(("graph", name), read)

    def _models(self, name: str) -> list[StoredModel]:
        def read() -> list[StoredModel]:
            with connect(self.engine) as conn:
                rows = conn.execute(
                    select(
                        HashModel.id,
                        HashModel.name,
                        HashModel.n_bits,
                        HashModel.embedding_dim,
                        HashModel.checkpoint_sha256,
                    )
                    .where(
                        HashModel.id.in_(
                            select(ImageHash.model_id)
                            .join(Image, Image.id == ImageHash.image_key)
                            .join(Collection, Collection.id == Image.collection_id)
                            .where(Collection.name == name)
                            .distinct()
                        )
                    )
                    .order_by(HashModel.name)
                ).all()
            return [StoredModel(int(r[0]), r[1], int(r[2]), int(r[3]), r[4]) for r in rows]

        return self._once(("models", name), read)

    def images(self, name: str, page: int = 1, per_page: int = 48) -> dict[str, Any]:
        """A page of a collection's images (id order): ids and labels, and how many pages there are."""
        self.summary(name)
        if not 1 <= per_page <= 200:
            raise SemretError(f"per_page must be from 1 to 200, got {per_page}")
        stored = self.pixels.collection(name)
        pages = max(1, -(-len(stored.image_ids) // per_page))
        if not 1 <= page <= pages:
            raise SemretError(f"page must be from 1 to {pages}, got {page}")
        start = (page - 1) * per_page
        rows = range(start, min(start + per_page, len(stored.image_ids)))
        return {
            "page": page,
            "pages": pages,
            "per_page": per_page,
            "images": [
                {"image_id": int(stored.image_ids[i]), "label": stored.labels[i], "split": stored.splits[i]}
                for i in rows
            ],
        }

    def hierarchy(self, name: str) -> ClassHierarchy | None:
        return self._once(("hierarchy", name), lambda: hierarchy_for(self.summary(name).dataset))

    # --- methods -------------------------------------------------------------------------------

    def encoder(self, name: str) -> UploadEncoder | None:
        """The upload encoder of the first report for the collection whose backbone can be built."""
        for report_name, report in self.reports.items():
            if report.collection == name and self._encoders[report_name].why_not() is None:
                return self._encoders[report_name]
        return None

    def methods(self, name: str) -> list[Method]:
        """The collection's methods, in the order the pages show them."""
        return self._once(("methods", name), lambda: self._find_methods(name))

    def _find_methods(self, name: str) -> list[Method]:
        found: list[Method] = []
        encoder = self.encoder(name)
        graph = self._graph(name)
        if graph is not None:
            uploads = encoder is not None and encoder.can_iwan(self._iwan(name))
            scheme = "published" if graph["scheme"] == "published" else "semret"
            found.append(Method("iwan", f"IWAN ({scheme} graph)", "iwan", takes_words=True, takes_uploads=uploads))
        for model in self._models(name):
            uploads = encoder is not None and encoder.has_model(model)
            for prefix, mode in HASH_MODES.items():
                title = f"semantic hash, {MODE_TITLES[mode]} ({model.n_bits} bits)"
                found.append(Method(f"{prefix}:{model.name}", title, "hash", False, uploads, model.name, mode))
        for index_name in sorted(self.index_files.get(name, {})):
            loaded = self._index(name, index_name)
            uploads = encoder is not None and self._index_route(name, loaded, encoder) is not None
            title = f"vector index {index_name} ({loaded.index.kind})"
            found.append(Method(f"index:{index_name}", title, "index", False, uploads))
        return found

    def method(self, name: str, key: str) -> Method:
        for method in self.methods(name):
            if method.key == key:
                return method
        known = ", ".join(m.key for m in self.methods(name)) or "none"
        raise NotFoundError(f"collection {name!r} has no method {key!r} (its methods: {known})")

    def _iwan(self, name: str) -> StoredIwan:
        return self._once(("iwan", name), lambda: iwan_searcher(self.engine, name))

    def _hash(self, name: str, method: Method) -> LoadedHash:
        model = next(m for m in self._models(name) if m.name == method.model)
        return self._once(
            ("hash", name, method.model, method.mode),
            lambda: load_hash_search(self.engine, model, name, method.mode or "rerank"),
        )

    def _index(self, name: str, index_name: str) -> LoadedIndex:
        file = self.index_files[name][index_name]
        return self._once(("index", name, index_name), lambda: load_vector_index(file))

    # --- queries -------------------------------------------------------------------------------

    def query(self, name: str, keys: Sequence[str], query: Query, k: int) -> list[MethodAnswer]:
        """Each method's results for one query, in the order of ``keys``."""
        summary = self.summary(name)
        given = [query.image_id is not None, query.words is not None, query.upload is not None]
        if sum(given) != 1:
            raise SemretError("give exactly one query: an image id, words, or an uploaded image")
        if not keys:
            raise SemretError("choose at least one method")
        k = check_k(k, summary.images)
        methods = [self.method(name, key) for key in dict.fromkeys(keys)]
        if query.image_id is not None:
            self.pixels.label(name, query.image_id)  # an unknown id is a 404 before any search
        features = None
        if query.upload is not None:
            refused = [m.key for m in methods if not m.takes_uploads]
            if refused:
                raise SemretError(
                    f"{', '.join(refused)} cannot take an uploaded image: an upload goes through the backbone and "
                    f"models that made the method's stored vectors, from an evaluation report of {name!r} "
                    "(semret serve --report DIR; an index must record its vectors' origin, docs/serve.md)"
                )
            encoder = self.encoder(name)
            assert encoder is not None
            features = encoder.features(query.upload.pixels)
        if query.words is not None:
            refused = [m.key for m in methods if not m.takes_words]
            if refused:
                raise SemretError(f"{', '.join(refused)} cannot take words: only IWAN answers words")
        query_label = self.pixels.label(name, query.image_id) if query.image_id is not None else None
        return [self._answer(name, method, query, k, features, query_label) for method in methods]

    def _answer(
        self,
        name: str,
        method: Method,
        query: Query,
        k: int,
        features: npt.NDArray[np.float32] | None,
        query_label: str | None,
    ) -> MethodAnswer:
        hierarchy = self.hierarchy(name)
        notes: list[str] = []
        if method.kind == "iwan":
            stored = self._iwan(name)
            words: WeightedWords
            if query.image_id is not None:
                words = image_query(self.engine, stored, query.image_id)
            elif query.words is not None:
                words = stored.index.query_from_words(parse_words(query.words))
            else:
                encoder = self.encoder(name)
                assert encoder is not None and features is not None
                words = encoder.iwan_query(stored, features)
                notes.append("query words: " + ", ".join(stored.index.words[int(w)] for w in words.words))
            start = time.perf_counter()
            results = iwan_results(self.engine, stored, words, k, exclude=query.image_id)
            elapsed = (time.perf_counter() - start) * 1000
            for row in results:
                row["explanation"] = {"path": iwan_edges(row["path"], row["path_distances"])}
            if not results:
                notes.append("no image can be reached from this query")
            return MethodAnswer(method, results, elapsed, notes)
        if method.kind == "hash":
            loaded = self._hash(name, method)
            if query.image_id is not None:
                hash_query = loaded.query_for(query.image_id)
            else:
                encoder = self.encoder(name)
                assert encoder is not None and features is not None
                model = next(m for m in self._models(name) if m.name == method.model)
                hash_query = encoder.hash_query(model, features)
            start = time.perf_counter()
            results = hash_results(loaded, hash_query, k, exclude=query.image_id)
            elapsed = (time.perf_counter() - start) * 1000
            self._explain_hash(loaded, hash_query, results, hierarchy, query_label)
            return MethodAnswer(method, results, elapsed, notes)
        loaded_index = self._index(name, method.key.split(":", 1)[1])
        if query.image_id is not None:
            vectors = loaded_index.vector_for(query.image_id)
        else:
            encoder = self.encoder(name)
            assert encoder is not None and features is not None
            route = self._index_route(name, loaded_index, encoder)
            if route is None:
                raise SemretError(f"{method.key}: its vectors did not come from this report's backbone or models")
            if route == "features":
                vectors = features
            else:
                embedded = encoder.hash_query(route, features).embeddings
                if embedded is None:
                    raise SemretError(f"{method.key}: model {route.name!r} gives the upload no embedding")
                vectors = embedded
        start = time.perf_counter()
        results, candidates = vector_results(loaded_index, vectors, k, exclude=query.image_id)
        elapsed = (time.perf_counter() - start) * 1000
        notes.append(f"{candidates:,} candidates scored")
        for row in results:
            row["explanation"] = {"classes": class_relation(hierarchy, query_label, row["label"])}
        return MethodAnswer(method, results, elapsed, notes)

    def _index_route(
        self, name: str, loaded: LoadedIndex, encoder: UploadEncoder
    ) -> Literal["features"] | StoredModel | None:
        """How an upload reaches an index's vectors: "features" (they are the backbone's features:
        the same backbone, weights and input size as the encoder's), the hash model whose
        embeddings they are (its checkpoint in the report), or None (not at all, or not known)."""
        origin = loaded.origin or {}
        if origin.get("kind") == "features":
            return "features" if encoder.feature_origin() == origin else None
        if origin.get("kind") == "embeddings":
            model = next((m for m in self._models(name) if m.name == origin.get("model")), None)
            return model if model is not None and encoder.has_model(model) else None
        return None

    @staticmethod
    def _explain_hash(
        loaded: LoadedHash,
        query: HashQueries,
        results: list[dict[str, Any]],
        hierarchy: ClassHierarchy | None,
        query_label: str | None,
    ) -> None:
        for row in results:
            code = loaded.stored.codes[loaded.position(row["image_id"])]
            row["explanation"] = {
                "classes": class_relation(hierarchy, query_label, row["label"]),
                "bits": None if query.codes is None else differing_bits(query.codes[0], code, loaded.model.n_bits),
            }

    # --- reports -------------------------------------------------------------------------------

    def report(self, name: str) -> EvalReport:
        if name not in self.reports:
            known = ", ".join(self.reports) or "none (give one with semret serve --report DIR)"
            raise NotFoundError(f"no report {name!r} (reports: {known})")
        return self.reports[name]
