"""What every vector index of semret shares: the API, validation, storage, re-ranking, files.

The shape is FAISS-like with scikit-learn habits: parameters in ``__init__`` (read back by
`get_params`, from the signature); ``fit(vectors)`` where an index learns something (learned
state ends in ``_``); ``add(ids, vectors)``; semret's search contract
``search(queries, k, *, exclude_ids=None) -> (scores, ids)`` (`semret.core.search`); ``save(path)``
and `load_index(path)`; a spec string names a kind and its parameters (`make_index_from_spec`).
Vectors are kept L2-normalised in a `VectorStore` (by position, in id order) and candidates are
ranked by cosine similarity, as the published systems did, by one shared re-ranker
(`VectorStore.rank_pairs`, ties by id). After each search, ``last_candidates`` holds how many
candidates each query scored: the work it did, for the speed/recall trade-off.

A subclass finds candidates one of two ways:

- bucket kinds (LSH, the learned LSH kinds) give flat (query, position) pairs (`_candidate_pairs`),
  all of which are scored exactly;
- engine kinds (exact, k-means IVF, HNSW, LSH codes) let a faiss index propose each query's best
  positions with float32 scores (`_engine_search`), and `_refined_search` re-scores them with the
  defined similarity. Where the engine scores every candidate it has (``engine_is_exhaustive``:
  exact, IVF), the result is exactly the top k of those candidates by the defined similarity, ties
  by id: the engine is asked for k + `REFINE_MARGIN` results; only the first k are re-scored where
  the (k + 1)-th lies below the k-th by more than the float32 error bound, all of them where a
  near tie reaches further, and a query whose last proposal is within the bound is asked again for
  more (rare: many near ties).
"""

from __future__ import annotations

import json
from abc import ABC
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from semret.core.cosine import check_directions, normalise
from semret.core.params import Configurable, check_is_fitted
from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.core.spec import Spec, format_spec, parse_spec
from semret.core.validation import check_absent, check_dim, check_ids
from semret.errors import SemretError
from semret.indexes.store import FlatStore, VectorStore, similarity_error_bound

FILE_FORMAT = "semret.vector-index"
#: Queries whose candidates are looked up and re-ranked at once (bucket kinds).
QUERY_BLOCK = 256
#: Proposals asked of an exhaustive engine beyond k (see `VectorIndex._refined_search`).
REFINE_MARGIN = 4
#: Vectors normalised and handed to `_add` at once (bounds the float64 copies of a large add).
ADD_BLOCK = 1 << 16

_REGISTRY: dict[str, type[VectorIndex]] = {}

#: What an engine proposes: (float32 scores, positions (-1 = none), each (queries, k); candidates
#: scanned per query, or a function that counts them, called only if `last_candidates` is read).
Proposals = tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64] | Callable[[], npt.NDArray[np.int64]]
]


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
    #: Engine kinds: whether the engine scores all of its candidates (so the refined result is
    #: exact among them, see the module docstring) rather than a heuristic subset (HNSW).
    engine_is_exhaustive: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None):
            _REGISTRY[cls.kind] = cls

    def __init__(self, dim: int) -> None:
        self.dim = check_dim(dim)
        self.store: VectorStore = self._new_store()
        self._last_candidates: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._count_later: Callable[[], npt.NDArray[np.int64]] | None = None

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, ntotal={self.ntotal})"

    @property
    def last_candidates(self) -> npt.NDArray[np.int64]:
        """Candidates scored per query by the last search (counted now where the engine counts
        them only when asked: the k-means lists probed, from the last batch of queries, which is
        kept until then; an `add` or `fit` counts them first)."""
        if self._count_later is not None:
            self._last_candidates, self._count_later = self._count_later(), None
        return self._last_candidates

    @last_candidates.setter
    def last_candidates(self, counts: npt.NDArray[np.int64]) -> None:
        self._last_candidates, self._count_later = counts, None

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

    def _new_store(self) -> VectorStore:
        """Where the vectors live (a `FlatStore` unless the kind's engine holds them)."""
        return FlatStore(self.dim)

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:
        """Learn from unit vectors (only for indexes with ``needs_fit``)."""

    def _add(self, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        """Index new unit vectors stored at ``positions`` (e.g. put them in buckets)."""

    def _renumber(self, moved: npt.NDArray[np.int64]) -> None:
        """The store's old positions moved (ids were added before existing ones): position p is
        now ``moved[p]``; renumber what holds positions."""

    def _candidate_pairs(self, queries: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Bucket kinds: the distinct (query row, position) pairs to score, sorted by (row, position)."""
        raise NotImplementedError(f"the {self.kind} index has no candidate pairs")

    def _engine_search(self, queries: npt.NDArray[np.float32], k: int) -> Proposals:
        """Engine kinds: each query's k best proposals, best first (`Proposals`)."""
        raise NotImplementedError(f"the {self.kind} index has no search engine")

    uses_engine: ClassVar[bool] = False

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

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The ids in the index, ascending (a copy)."""
        return self.store.ids.copy()

    def vectors(self, ids: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        """The stored unit vectors of ``ids`` (default: all, in the order of `ids`); an id not in
        the index is an error."""
        if ids is None:
            return self.store.vectors()
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        positions = self.store.positions_of(wanted)
        if (positions < 0).any():
            raise SemretError(f"ids not in the {self.kind} index: {wanted[positions < 0][:5].tolist()}")
        return self.store.gather(positions)

    def _settle_count(self) -> None:
        """Count the last search's candidates now if they are still to be counted: the index is
        about to change."""
        if self._count_later is not None:
            _ = self.last_candidates

    def fit(self, vectors: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> Self:
        """Learn what the index needs from (n, dim) vectors (labels are optional hints)."""
        self._settle_count()
        unit = normalise(vectors, self.dim)
        if len(unit) == 0:
            raise SemretError(f"cannot fit a {self.kind} index on no vectors")
        label_array = None if labels is None else np.asarray(labels, dtype=np.int64)
        if label_array is not None and len(label_array) != len(unit):
            raise SemretError(f"{len(unit)} vectors but {len(label_array)} labels")
        self._fit(unit, label_array)
        return self

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add (n, dim) vectors under distinct new ids (>= 0). Nothing is added if any fails."""
        self._settle_count()
        if self.needs_fit and self.fitted_attribute:
            check_is_fitted(self, self.fitted_attribute)
        array = np.asarray(vectors)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise SemretError(f"vectors must be a 2-d (n, {self.dim}) array, got shape {array.shape}")
        new_ids = check_ids(ids, len(array))
        check_absent(self.store.ids, new_ids)
        if not self.store.takes_blocks or len(array) <= ADD_BLOCK:
            self._add_unit(new_ids, normalise(array, self.dim))
            return
        # A store that copies each block into its engine (IVF) takes the vectors a block at a time,
        # so that no normalised copy of them all is made; they are all checked first.
        for start in range(0, len(array), ADD_BLOCK):
            check_directions(array[start : start + ADD_BLOCK])
        for start in range(0, len(array), ADD_BLOCK):
            self._add_unit(new_ids[start : start + ADD_BLOCK], normalise(array[start : start + ADD_BLOCK], self.dim))

    def _add_unit(self, ids: npt.NDArray[Any], unit: npt.NDArray[np.float32]) -> None:
        positions, moved = self.store.add(ids, unit)
        if moved is not None:
            self._renumber(moved)
        self._add(positions, unit)

    def empty_error(self) -> SemretError:
        return SemretError(f"the {self.kind} index is empty: add vectors before searching")

    def _search(
        self, queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k most similar vectors of each query by cosine, among its candidates: (scores, ids)."""
        unit = normalise(queries, self.dim, "queries")
        if self.uses_engine:
            return self._refined_search(unit, k)
        scores = np.full((len(unit), k), MISSING_SCORE, dtype=np.float32)
        ids = np.full((len(unit), k), NO_ID, dtype=np.int64)
        counts = np.zeros(len(unit), dtype=np.int64)
        for start in range(0, len(unit), QUERY_BLOCK):
            block = unit[start : start + QUERY_BLOCK]
            rows, positions = self._candidate_pairs(block)
            counts[start : start + len(block)] = np.bincount(rows, minlength=len(block))
            scores[start : start + len(block)], ids[start : start + len(block)] = self.store.rank_pairs(
                block, rows, positions, k, sorted_pairs=True
            )
        self.last_candidates = counts
        return scores, ids

    def _refined_search(
        self, unit: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The engine's proposals re-scored with the defined similarity (module docstring)."""
        n = self.ntotal
        scores = np.full((len(unit), k), MISSING_SCORE, dtype=np.float32)
        ids = np.full((len(unit), k), NO_ID, dtype=np.int64)
        self.last_candidates = np.zeros(len(unit), dtype=np.int64)
        if len(unit) == 0:
            return scores, ids
        eps = np.float32(similarity_error_bound(self.dim))
        exhaustive = self.engine_is_exhaustive
        asked = min(n, k + REFINE_MARGIN) if exhaustive else k
        todo = np.arange(len(unit))
        while len(todo):
            block = unit if len(todo) == len(unit) else unit[todo]
            approx, positions, scanned = self._engine_search(block, asked)
            counts: npt.NDArray[np.int64] | None = None
            if not callable(scanned):
                counts = scanned
            elif len(todo) == len(unit):  # counted later, for every query (the first round has them all)
                self._count_later = scanned
            if not exhaustive or asked >= n:
                groups = [(np.ones(len(todo), dtype=np.bool_), positions.shape[1])]
                done = groups[0][0]
            else:
                # Every candidate outside the first j proposals scores <= the j-th; where that is
                # below the k-th minus the error bound, no candidate of the exact top k is beyond
                # it: most queries need only their first k re-scored, a near tie at the k-th all
                # of them, and a query whose last proposal is within the bound is asked again.
                threshold = approx[:, k - 1] - eps
                clear = (positions[:, k] < 0) | (approx[:, k] < threshold)  # here asked > k
                done = (positions[:, -1] < 0) | (approx[:, -1] < threshold)
                groups = [(clear, k), (done & ~clear, positions.shape[1])]
            for rows, width in groups:
                if not rows.any():
                    continue
                every = bool(rows.all())
                finished = todo if every else todo[rows]
                scores[finished], ids[finished] = self.store.rank_rows(
                    block if every else block[rows], (positions if every else positions[rows])[:, :width], k
                )
                if counts is not None:
                    self._last_candidates[finished] = counts if every else counts[rows]
            todo = todo[~done]
            asked = min(n, asked * 4)
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
    """The kinds of index there are (``exact``, ``hnsw``, ``kmeans``, ``lsh``, ``lsh-codes``,
    ``neural-lsh``, ``neural-lsh-knn``, ``fourier-lsh``)."""
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
