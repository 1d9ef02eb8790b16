"""What every vector index of semret shares: the API, validation, storage, re-ranking, files.

The shape is FAISS-like with scikit-learn habits: parameters in ``__init__``; ``fit(vectors)``
where an index learns something; ``add(ids, vectors)``; ``search(queries, k) -> (scores, ids)``,
batch first, numpy in and out, rows padded with score -inf and id -1; ``save(path)`` and
`load_index(path)`. Vectors are kept L2-normalised and candidates are ranked by cosine similarity,
as the published systems did, by one shared re-ranker (`CosineIndex.search_subset_positions`,
ties by id). After each search, ``last_candidates`` holds how many candidates each query scored:
the work it did, for the speed/recall trade-off.

A subclass says how to find candidates (`_candidates`) and what it learns (`_fit`, `_state`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from semret.errors import SemretError
from semret.hashing.cosine import CosineIndex, normalise
from semret.hashing.hamming import check_k

FILE_FORMAT = "semret.vector-index"
#: Candidates re-ranked at once: bounds the (queries x candidates) block in memory.
RERANK_AREA = 1 << 24

_REGISTRY: dict[str, type[VectorIndex]] = {}


class VectorIndex(ABC):
    """Base of the vector indexes; see the module docstring."""

    kind: ClassVar[str]
    needs_fit: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None):
            _REGISTRY[cls.kind] = cls

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, int | np.integer) or dim < 1:
            raise SemretError(f"the dimension must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.store = CosineIndex(self.dim)
        self.last_candidates: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._sorted_ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.is_fitted = not self.needs_fit

    # --- what subclasses provide ---------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The ``__init__`` parameters (besides ``dim``), for `save` and display."""
        return {}

    def _fit(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> None:  # noqa: B027 (an optional hook)
        """Learn from unit vectors (only for indexes with ``needs_fit``)."""

    def _add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:  # noqa: B027 (an optional hook)
        """Index new unit vectors under their ids (e.g. put them in buckets)."""

    @abstractmethod
    def _candidates(self, queries: npt.NDArray[np.float32]) -> list[npt.NDArray[np.int64]]:
        """Per query, the ids of the vectors to score (any order, no repeats needed)."""

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        """Learned arrays to save (besides the vectors)."""
        return {}

    def _restore(self, state: dict[str, npt.NDArray[Any]]) -> None:  # noqa: B027 (an optional hook)
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
        self.is_fitted = True
        return self

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add (n, dim) vectors under distinct new ids (>= 0)."""
        if not self.is_fitted:
            raise SemretError(f"the {self.kind} index must be fitted before vectors are added: call fit()")
        self.store.add(ids, vectors)
        id_array = np.asarray(ids, dtype=np.int64)
        self._sorted_ids = self.store.ids
        self._add(id_array, normalise(vectors, self.dim))

    def search(self, queries: npt.ArrayLike, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k most similar vectors of each query by cosine, among its candidates: (scores, ids)."""
        k = check_k(k)
        if self.ntotal == 0:
            raise SemretError(f"the {self.kind} index is empty: add vectors before searching")
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
        header = {"format": FILE_FORMAT, "kind": self.kind, "dim": self.dim, "params": self.params()}
        state = {f"state_{name}": value for name, value in self._state().items()}
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[Any]] = {
            "header": np.array(json.dumps(header)),
            "ids": self.store.ids,
            "vectors": self.store.vectors(),
            "fitted": np.array(self.is_fitted),
            **state,
            **{f"extra_{name}": value for name, value in (extra or {}).items()},
        }
        with file.open("wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwargs


def load_index(path: str | Path) -> VectorIndex:
    """Read an index written by `VectorIndex.save`, of whatever kind it is."""
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        header = json.loads(str(arrays["header"]))
    except (OSError, ValueError, KeyError) as exc:
        raise SemretError(f"{file}: not a readable semret vector index ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT or header.get("kind") not in _REGISTRY:
        kind = header.get("kind") if isinstance(header, dict) else None
        raise SemretError(f"{file}: not a semret vector index (or of an unknown kind {kind!r})")
    try:
        index = _REGISTRY[header["kind"]](header["dim"], **header["params"])
    except (TypeError, KeyError) as exc:
        raise SemretError(f"{file}: the index's parameters do not fit a {header['kind']} index ({exc})") from exc
    index._restore({key.removeprefix("state_"): value for key, value in arrays.items() if key.startswith("state_")})
    index.is_fitted = bool(arrays["fitted"])
    if len(arrays["ids"]):
        index.add(arrays["ids"], arrays["vectors"])
    return index


def read_index_extra(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The ``extra`` arrays saved with an index (empty if none)."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            return {k.removeprefix("extra_"): archive[k] for k in archive.files if k.startswith("extra_")}
    except (OSError, ValueError) as exc:
        raise SemretError(f"{path}: not a readable semret vector index ({exc})") from exc


def index_kinds() -> list[str]:
    """The kinds of index there are (``exact``, ``lsh``, ``kmeans``, ``neural-lsh``)."""
    return sorted(_REGISTRY)


def index_class(kind: str) -> type[VectorIndex]:
    """The class of an index kind; an unknown kind lists the known ones."""
    if kind not in _REGISTRY:
        raise SemretError(f"unknown index kind {kind!r}: choose one of {', '.join(index_kinds())}")
    return _REGISTRY[kind]


def make_index(kind: str, dim: int, **params: Any) -> VectorIndex:
    """An index of ``kind`` with ``params``."""
    return index_class(kind)(dim, **params)
