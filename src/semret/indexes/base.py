"""What every vector index of semret shares: the API, validation, storage, re-ranking, files.

The shape is FAISS-like with scikit-learn habits: parameters in ``__init__`` (read back by
`get_params`, from the signature); ``fit(vectors)`` where an index learns something (learned
state ends in ``_``); ``add(ids, vectors)``; semret's search contract
``search(queries, k, *, exclude_ids=None) -> (scores, ids)`` (`semret.core.search`); ``save(path)``
and `load_index(path)`; a spec string names a kind and its parameters (`make_index_from_spec`).
Vectors are kept L2-normalised and candidates are ranked by cosine similarity, as the published
systems did, by one shared re-ranker (`CosineIndex.rank_pairs`, ties by id). After each search,
``last_candidates`` holds how many candidates each query scored: the work it did, for the
speed/recall trade-off.

A subclass says how to find candidates (`_candidates`) and what it learns (`_fit`, `_state`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from semret.core.cosine import CosineIndex, normalise
from semret.core.params import Configurable, check_is_fitted
from semret.core.search import SearcherBase
from semret.core.spec import Spec, format_spec, parse_spec
from semret.core.validation import check_dim
from semret.errors import SemretError

FILE_FORMAT = "semret.vector-index"
#: Candidates re-ranked at once: bounds the (queries x candidates) block in memory.
RERANK_AREA = 1 << 24

_REGISTRY: dict[str, type[VectorIndex]] = {}


class VectorIndex(Configurable, SearcherBase, ABC):
    """Base of the vector indexes; see the module docstring."""

    kind: ClassVar[str]
    needs_fit: ClassVar[bool] = False
    #: The learned attribute that `check_is_fitted` looks at (for indexes with ``needs_fit``).
    fitted_attribute: ClassVar[str | None] = None
    score_name = "cosine"
    #: Kinds that earlier versions of semret saved this class's files under (a kind that was
    #: renamed); `load_index` reads such a file as this class when its parameters are this class's.
    former_kinds: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None):
            _REGISTRY[cls.kind] = cls

    def __init__(self, dim: int) -> None:
        self.dim = check_dim(dim)
        self.store = CosineIndex(self.dim)
        self.last_candidates: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._sorted_ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, ntotal={self.ntotal})"

    @property
    def is_fitted(self) -> bool:
        """Whether the index can take vectors (always, for indexes that learn nothing)."""
        if not self.needs_fit or self.fitted_attribute is None:
            return True
        return getattr(self, self.fitted_attribute, None) is not None

    @property
    def spec(self) -> str:
        """The spec string of this index's kind and parameters (besides ``dim``)."""
        params = self.get_params()
        params.pop("dim")
        return format_spec(self.kind, params)

    # --- what subclasses provide ---------------------------------------------------------------

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        """Learn from unit vectors (only for indexes with ``needs_fit``)."""

    def _add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        """Index new unit vectors under their ids (e.g. put them in buckets)."""

    @abstractmethod
    def _candidates(self, queries: npt.NDArray[np.float32]) -> list[npt.NDArray[np.int64]]:
        """Per query, the ids of the vectors to score (any order, no repeats needed)."""

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        """Learned arrays to save (besides the vectors)."""
        return {}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:
        """Set learned arrays from a saved file."""

    # --- the shared API ------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return self.store.ntotal

    def fit(self, vectors: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> Self:
        """Learn what the index needs from (n, dim) vectors (labels are optional hints)."""
        unit = normalise(vectors, self.dim)
        if len(unit) == 0:
            raise SemretError(f"cannot fit a {self.kind} index on no vectors")
        label_array = None if labels is None else np.asarray(labels, dtype=np.int64)
        if label_array is not None and len(label_array) != len(unit):
            raise SemretError(f"{len(unit)} vectors but {len(label_array)} labels")
        self._fit(unit, label_array)
        return self

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add (n, dim) vectors under distinct new ids (>= 0)."""
        if self.needs_fit and self.fitted_attribute:
            check_is_fitted(self, self.fitted_attribute)
        self.store.add(ids, vectors)
        id_array = np.asarray(ids, dtype=np.int64)
        self._sorted_ids = self.store.ids
        self._add(id_array, normalise(vectors, self.dim))

    def empty_error(self) -> SemretError:
        return SemretError(f"the {self.kind} index is empty: add vectors before searching")

    def _search(
        self, queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k most similar vectors of each query by cosine, among its candidates: (scores, ids)."""
        unit = normalise(queries, self.dim, "queries")
        candidates = [np.unique(c) for c in self._candidates(unit)]
        self.last_candidates = np.array([len(c) for c in candidates], dtype=np.int64)
        return self._rerank(unit, candidates, k)

    def _rerank(
        self, queries: npt.NDArray[np.float32], candidates: list[npt.NDArray[np.int64]], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Cosine top k of each query among its (distinct) candidate ids, shared by every index, in
        chunks of queries whose candidates add up to at most `RERANK_AREA`."""
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        unique = candidates
        sizes = np.array([len(c) for c in unique], dtype=np.int64)
        ends = np.cumsum(sizes)
        start = 0
        while start < len(queries):
            done = int(ends[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, done + RERANK_AREA, side="right")))
            block = unique[start:stop]
            rows = np.repeat(np.arange(stop - start, dtype=np.int64), sizes[start:stop])
            positions = np.searchsorted(self._sorted_ids, np.concatenate(block)) if rows.size else rows
            scores[start:stop], ids[start:stop] = self.store.rank_pairs(queries[start:stop], rows, positions, k)
            start = stop
        return scores, ids

    # --- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, npt.NDArray[Any]] | None = None) -> None:
        """Write the index (parameters, learned state, ids and vectors) to an ``.npz`` file;
        ``extra`` arrays (e.g. labels for display) travel along, see `read_index_extra`."""
        params = self.get_params()
        header = {"format": FILE_FORMAT, "kind": self.kind, "dim": params.pop("dim"), "params": params}
        state = {f"state_{name}": value for name, value in self._state().items()}
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[Any]] = {
            "header": np.array(json.dumps(header)),
            "ids": self.store.ids,
            "vectors": self.store.vectors(),
            "fitted": np.array(self.is_fitted),  # read by older semret; `_state` says it now
            **state,
            **{f"extra_{name}": value for name, value in (extra or {}).items()},
        }
        with file.open("wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwargs


def load_index(path: str | Path) -> VectorIndex:
    """Read an index written by `VectorIndex.save`, of whatever kind it is. A file of a kind that
    was renamed since (``neural-lsh`` of semret before the published PermGNN scheme took that name)
    is read as the class that now has its parameters (`VectorIndex.former_kinds`)."""
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        header = json.loads(str(arrays["header"]))
    except (OSError, ValueError, KeyError) as exc:
        raise SemretError(f"{file}: not a readable semret vector index ({exc})") from exc
    kind = header.get("kind") if isinstance(header, dict) else None
    cls = _file_class(kind, header.get("params") if isinstance(header, dict) else None)
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT or cls is None:
        raise SemretError(f"{file}: not a semret vector index (or of an unknown kind {kind!r})")
    try:
        index = cls(**{**header["params"], "dim": header["dim"]})
    except (TypeError, KeyError) as exc:
        raise SemretError(f"{file}: the index's parameters do not fit a {kind} index ({exc})") from exc
    index._restore({key.removeprefix("state_"): value for key, value in arrays.items() if key.startswith("state_")})
    if len(arrays["ids"]):
        index.add(arrays["ids"], arrays["vectors"])
    return index


def _file_class(kind: Any, params: Any) -> type[VectorIndex] | None:
    """The class that reads a file of ``kind`` with ``params``: the kind's own class where the
    parameters are its own, else a class that once had that kind and has those parameters (else
    the kind's own class, whose error then names what does not fit; None for an unknown kind)."""
    if not isinstance(kind, str):
        return None
    names = set(params) if isinstance(params, dict) else set()
    current = _REGISTRY.get(kind)
    if current is not None and names <= set(current.param_names()):
        return current
    for cls in _REGISTRY.values():
        if kind in cls.former_kinds and names <= set(cls.param_names()):
            return cls
    return current


def read_index_extra(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The ``extra`` arrays saved with an index (empty if none)."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            return {k.removeprefix("extra_"): archive[k] for k in archive.files if k.startswith("extra_")}
    except (OSError, ValueError) as exc:
        raise SemretError(f"{path}: not a readable semret vector index ({exc})") from exc


def index_kinds() -> list[str]:
    """The kinds of index there are (``exact``, ``kmeans``, ``lsh``, ``neural-lsh``, ``neural-lsh-knn``)."""
    return sorted(_REGISTRY)


def index_class(kind: str) -> type[VectorIndex]:
    """The class of an index kind; an unknown kind lists the known ones."""
    if kind not in _REGISTRY:
        raise SemretError(f"unknown index kind {kind!r}: choose one of {', '.join(index_kinds())}")
    return _REGISTRY[kind]


def check_index_params(kind: str, params: dict[str, Any], what: str | None = None) -> None:
    """Reject parameters an index kind does not take, or values it refuses, before any work: the
    parameter names against the signature, the values by building the index on a dummy dimension
    (nothing is learned or allocated beyond the parameters themselves)."""
    cls = index_class(kind)
    accepted = [name for name in cls.param_names() if name != "dim"]
    unknown = sorted(set(params) - set(accepted))
    where = what or f"the {kind} index"
    if unknown:
        raise SemretError(
            f"{where} has no parameter {', '.join(unknown)} (its parameters: {', '.join(accepted) or 'none'})"
        )
    dim = max([1, *(v for k, v in params.items() if k.endswith("components") and isinstance(v, int))])
    try:
        cls(dim, **params)
    except SemretError as exc:
        raise SemretError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise SemretError(f"{where}: {exc}") from None


def parse_index_spec(text: str) -> Spec:
    """A vector index spec string (``"kmeans:n_probe=4"``), its kind and parameters checked."""
    spec = parse_spec(text, "index spec")
    check_index_params(spec.kind, spec.params, f"index spec {text!r}")
    return spec


def make_index(kind: str, dim: int, **params: Any) -> VectorIndex:
    """A new, empty index of ``kind`` for ``dim``-dimensional vectors."""
    return index_class(kind)(dim, **params)


def make_index_from_spec(spec: str | Spec, dim: int, **defaults: Any) -> VectorIndex:
    """A new index from a spec string; ``defaults`` apply where the spec says nothing (and the
    kind takes them, e.g. a run's ``seed``)."""
    parsed = parse_index_spec(spec) if isinstance(spec, str) else spec
    accepted = set(index_class(parsed.kind).param_names())
    return make_index(parsed.kind, dim, **{**{k: v for k, v in defaults.items() if k in accepted}, **parsed.params})
