"""`HammingIndex`: Hamming k-nearest-neighbour search over packed binary codes, on faiss.

FAISS-like: ``add(ids, packed_codes)``, ``search(packed_queries, k) -> (scores, ids)``, batch
first, numpy in and out. Codes are packed as `semret.core.codes.pack_codes` packs them.

Kinds (``kind``), all behind semret's one search contract:

- ``"flat"`` (default): exact, `faiss.IndexBinaryFlat` over the codes zero-padded to whole 64-bit
  words (a 48-bit code is searched as one word, faiss' fastest path; zero padding bits change no
  distance).
- ``"ivf"``: approximate, `faiss.IndexBinaryIVF`: binary k-means into ``nlist`` lists (trained on
  the codes), ``nprobe`` lists scanned per query.
- ``"multihash"``: approximate, `faiss.IndexBinaryMultiHash`: ``nhash`` hash tables keyed by
  disjoint ``b``-bit substrings of the code (bits ``h*b .. (h+1)*b - 1`` of the code for table h);
  a query probes its own key and every key within ``nflip`` flipped bits in each table, then the
  union of those buckets is ranked by the full distance (multi-index hashing, Norouzi, Punjani &
  Fleet, "Fast search in Hamming space with multi-index hashing", CVPR 2012).

Tie order. Results are sorted by (distance, id): among codes at the same distance the smallest
ids come first. For ``"flat"`` this holds also at the k-th place, so the result is exact and fully
deterministic: the index keeps its codes in ascending id order, so faiss' positions are id-sorted
positions, and faiss' heap search keeps, among equal distances, the codes it saw first (it only
replaces its heap top by a strictly smaller distance, and its heap orders equal distances by
position, `faiss/utils/Heap.h` ``cmp2``): the order (distance, position) = (distance, id).
Positions map to ids with one numpy gather. The tests check this against the pure numpy kernel
(`semret.core.hamming_numpy`) and a brute-force reference on codes with many ties. The
approximate kinds return what faiss found, each row re-sorted by (distance, id); which of several
codes at the k-th distance they return is theirs.

``n_threads`` is the number of OpenMP threads faiss uses during this index's calls (faiss'
setting is process-wide: it is set for the call and restored); None leaves faiss' own setting (all
CPUs by default). The approximate kinds are built at the first search (the IVF is trained on all
codes then), and later adds go into them directly; `reset` drops them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, get_args

import faiss
import numpy as np
import numpy.typing as npt

from semret.core.codes import check_packed, code_bytes
from semret.core.search import MISSING_SCORE, NO_ID, SearcherBase
from semret.core.spec import format_spec, parse_spec
from semret.core.validation import check_choice, check_ids, check_k, check_optional_int, merge_sorted_ids
from semret.errors import SemretError

__all__ = [
    "KINDS",
    "MISSING_DISTANCE",
    "NO_ID",
    "QUERY_BATCH",
    "HammingIndex",
    "HammingKind",
    "default_threads",
    "hamming_distances",
]

#: Distance of a padding result (as faiss: the largest int32).
MISSING_DISTANCE = int(np.iinfo(np.int32).max)

HammingKind = Literal["flat", "ivf", "multihash"]
KINDS: tuple[str, ...] = get_args(HammingKind)
#: The parameters of each kind (None: chosen from the collection when the index is built).
_KIND_PARAMS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "ivf": ("nlist", "nprobe"),
    "multihash": ("nhash", "b", "nflip"),
}
#: Lists probed per query by default ("ivf").
DEFAULT_NPROBE = 16
#: Bits flipped per substring by default ("multihash").
DEFAULT_NFLIP = 1

#: Queries `faiss.IndexBinaryFlat` searches per OpenMP parallel region (faiss' default: 32). Each
#: region ends in a barrier per 65,536 codes; on shared, busy cores a barrier waits for a thread
#: that is not running, and with 32 a batch of 1,000 queries over 1M codes took 4x as long as with
#: 1,000 (docs/benchmarks.md). The per-query heaps are the results, so a larger batch costs no memory.
QUERY_BATCH = 4096

_FORMAT = "semret-hamming-index"
_VERSION = 1
#: Bit order reversed within a byte: faiss' hash tables read a code's bits from each byte's least
#: significant bit up, semret packs them from the most significant one (`semret.core.codes`).
_REVERSED_BITS = np.array([int(f"{value:08b}"[::-1], 2) for value in range(256)], dtype=np.uint8)


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def hamming_distances(scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
    """Hamming distances from search-contract scores (minus the distances; padding -inf -> 2**31 - 1),
    for every Hamming searcher, in memory or in a database. The padding is set apart, not cast:
    2**31 - 1 is no float32."""
    array = np.asarray(scores)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    distances = np.full(array.shape, MISSING_DISTANCE, dtype=np.int32)
    np.negative(array, out=distances, where=np.isfinite(array), casting="unsafe")
    return distances


@contextmanager
def faiss_threads(n_threads: int | None) -> Iterator[None]:
    """faiss' OpenMP threads set to ``n_threads`` for the block (None: left as they are), then restored."""
    if n_threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class HammingIndex(SearcherBase):
    """Hamming top-k over packed codes of ``n_bits`` bits, ties by id (ascending); exact for
    ``kind="flat"``, approximate for ``"ivf"`` (``nlist``, ``nprobe``) and ``"multihash"``
    (``nhash``, ``b``, ``nflip``); see the module docstring.

    `search` follows semret's search contract: scores are minus the Hamming distance (float32,
    higher is better), `to_distance` turns them back; `search_distances` gives the int32
    distances themselves, `search_positions` positions in `ids` instead of ids. Parameters left
    None are chosen when the index is built: ``nlist`` = sqrt(ntotal) (at most ntotal / 39, faiss'
    least training points per list), ``b`` = log2(ntotal) (at most ``n_bits``, 64), ``nhash`` =
    ``n_bits // b``. ``nprobe`` (default 16) and ``nflip`` (default 1) may be changed between
    searches; ``nlist``, ``nhash`` and ``b`` rebuild the approximate index when changed.
    """

    score_name = "-hamming"

    def __init__(
        self,
        n_bits: int,
        n_threads: int | None = None,
        kind: HammingKind = "flat",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        nhash: int | None = None,
        b: int | None = None,
        nflip: int | None = None,
    ) -> None:
        self.code_size = code_bytes(n_bits)
        self.n_bits = int(n_bits)
        self.n_threads = check_optional_int("n_threads", n_threads, 1)
        self.kind: HammingKind = check_choice("Hamming index kind", kind, KINDS)  # type: ignore[assignment]
        given = {"nlist": nlist, "nprobe": nprobe, "nhash": nhash, "b": b, "nflip": nflip}
        for name, value in given.items():
            if value is not None and name not in _KIND_PARAMS[self.kind]:
                raise SemretError(f"{name} is a parameter of another Hamming index kind than {self.kind!r}")
        self.nlist = check_optional_int("nlist", nlist, 1)
        self.nprobe = check_optional_int("nprobe", nprobe, 1)
        self.b = check_optional_int("b (bits per hash)", b, 1, min(64, self.n_bits))
        self.nhash = check_optional_int("nhash", nhash, 1, self.n_bits)
        if self.nhash is not None and self.b is not None and self.nhash * self.b > self.n_bits:
            raise SemretError(
                f"nhash * b must be at most the {self.n_bits} bits of a code, got {self.nhash} * {self.b}"
            )
        self.nflip = check_optional_int("nflip", nflip, 0, self.b if self.b is not None else min(64, self.n_bits))
        self.last_candidates = np.zeros(0, dtype=np.int64)
        self._width = 8 * ((self.code_size + 7) // 8)  # bytes per stored code: whole 64-bit words
        self._ids = np.empty(0, dtype=np.int64)
        self._flat = faiss.IndexBinaryFlat(8 * self._width)
        self._flat.query_batch_size = QUERY_BATCH  # type: ignore[attr-defined]
        self._engine: _IvfEngine | _MultiHashEngine | None = None

    @classmethod
    def from_spec(cls, spec: str, n_bits: int, n_threads: int | None = None) -> HammingIndex:
        """An empty index from a spec string: ``"flat"``, ``"ivf:nlist=1024,nprobe=16"``,
        ``"multihash:nhash=2,b=24,nflip=1"`` (`semret.core.spec`)."""
        parsed = parse_spec(spec, "Hamming index spec")
        kind = check_choice("Hamming index kind", parsed.kind, KINDS)
        for name in parsed.params:
            if name not in _KIND_PARAMS[kind]:
                allowed = ", ".join(_KIND_PARAMS[kind]) or "none"
                raise SemretError(f"Hamming index spec {spec!r}: unknown parameter {name} (parameters: {allowed})")
        return cls(n_bits, n_threads, kind, **parsed.params)  # type: ignore[arg-type]

    @property
    def spec(self) -> str:
        """The canonical spec string of the kind and its parameters given (`from_spec` reads it)."""
        params = {name: getattr(self, name) for name in _KIND_PARAMS[self.kind]}
        return format_spec(self.kind, {name: value for name, value in params.items() if value is not None})

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, spec={self.spec!r}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return len(self._ids)

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The ids in the index, ascending (a copy)."""
        return self._ids.copy()

    def reset(self) -> None:
        """Remove every code (and the approximate index built over them)."""
        self._ids = np.empty(0, dtype=np.int64)
        self._flat.reset()
        self._engine = None

    def add(self, ids: npt.ArrayLike, packed_codes: npt.ArrayLike) -> None:
        """Add codes (an (n, ceil(n_bits / 8)) uint8 array) under distinct new ids (>= 0)."""
        packed = check_packed(packed_codes, self.n_bits)
        new_ids = check_ids(ids, len(packed))
        merged, order = merge_sorted_ids(self._ids, new_ids)
        padded = self._pad(packed)
        if order is None:  # the new ids come after the old ones: appended
            self._flat.add(padded)
        else:  # faiss' positions must stay id-sorted: the codes are put in id order again
            stored = np.concatenate([self._stored(), padded])[order]
            self._flat.reset()
            self._flat.add(np.ascontiguousarray(stored))
        self._ids = merged
        if self._engine is not None and len(new_ids):
            with faiss_threads(self.n_threads):
                self._engine.add(new_ids, padded)

    def codes(self) -> npt.NDArray[np.uint8]:
        """The packed codes, in the order of `ids`."""
        return np.ascontiguousarray(self._stored()[:, : self.code_size])

    # --- search --------------------------------------------------------------------------------

    def empty_error(self) -> SemretError:
        return SemretError("the Hamming index is empty: add codes before searching")

    def to_distance(self, scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
        return hamming_distances(scores)

    def _search(
        self, packed_queries: npt.ArrayLike, k: int, n_excluded: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        distances, ids = self.search_distances(packed_queries, k)
        scores = np.empty(distances.shape, dtype=np.float32)
        np.negative(distances, out=scores, casting="unsafe")  # one pass: exact, distances are small
        if self.kind != "flat":  # only the approximate kinds pad (flat rows have k <= ntotal codes)
            scores[ids == NO_ID] = MISSING_SCORE
        return scores, ids

    def search_distances(
        self, packed_queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """The k nearest codes of each query: (distances int32, ids int64), each (queries, min(k, ntotal)).

        Sorted by (distance, id). Rows are padded with distance 2**31 - 1 and id -1 where fewer
        codes were found (only the approximate kinds find fewer than min(k, ntotal)).
        """
        queries, k = self._check_search(packed_queries, k)
        if self.kind == "flat":
            distances, positions = self._search_flat(queries, k)
            return distances, self._ids[positions]  # k <= ntotal: flat rows are never padded
        return self._search_engine(queries, k)

    def search_positions(
        self, packed_queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """As `search_distances`, but with positions in `ids` (ascending id order) instead of ids
        (-1 for padding)."""
        queries, k = self._check_search(packed_queries, k)
        if self.kind == "flat":
            return self._search_flat(queries, k)
        distances, ids = self._search_engine(queries, k)
        found = ids != NO_ID
        return distances, np.where(found, np.searchsorted(self._ids, ids), NO_ID)

    def _check_search(self, packed_queries: npt.ArrayLike, k: int) -> tuple[npt.NDArray[np.uint8], int]:
        queries = check_packed(packed_queries, self.n_bits, "queries")
        if self.ntotal == 0:
            raise self.empty_error()
        return self._pad(queries), min(check_k(k), self.ntotal)

    def _search_flat(
        self, queries: npt.NDArray[np.uint8], k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Exact top k (k <= ntotal) by faiss' heap search: (distances, id-sorted positions)."""
        with faiss_threads(self.n_threads):
            distances, positions = self._flat.search(queries, k)
        self.last_candidates = np.full(len(queries), self.ntotal, dtype=np.int64)
        return distances, positions

    def _search_engine(
        self, queries: npt.NDArray[np.uint8], k: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Approximate top k by the kind's faiss index, rows sorted by (distance, id)."""
        engine = self._built_engine()
        with faiss_threads(self.n_threads):
            if isinstance(engine, _IvfEngine):
                nprobe = check_optional_int("nprobe", self.nprobe, 1) or DEFAULT_NPROBE
                distances, ids, self.last_candidates = engine.search(queries, k, nprobe)
            else:
                nflip = check_optional_int("nflip", self.nflip, 0)
                nflip = DEFAULT_NFLIP if nflip is None else nflip
                distances, ids, self.last_candidates = engine.search(queries, k, min(nflip, engine.b))
        return _sorted_rows(distances, ids)

    def _built_engine(self) -> _IvfEngine | _MultiHashEngine:
        """The approximate index over every code, built now if it is missing or its build
        parameters were changed since."""
        n, engine = self.ntotal, self._engine
        if self.kind == "ivf":
            nlist = self.nlist or max(1, min(math.isqrt(n), n // 39))
            if isinstance(engine, _IvfEngine) and self.nlist in (None, engine.nlist):
                return engine
            if nlist > n:
                raise SemretError(f"nlist ({nlist}) must be at most the number of codes ({n}) to train the IVF")
            with faiss_threads(self.n_threads):
                self._engine = _IvfEngine(8 * self._width, nlist, self._ids, self._stored())
            return self._engine
        if isinstance(engine, _MultiHashEngine) and self.nhash in (None, engine.nhash) and self.b in (None, engine.b):
            return engine
        b = self.b or max(1, min(self.n_bits, 64, round(math.log2(max(n, 2)))))
        nhash = self.nhash or max(1, self.n_bits // b)
        if nhash * b > self.n_bits:
            raise SemretError(f"nhash * b must be at most the {self.n_bits} bits of a code, got {nhash} * {b}")
        self._engine = _MultiHashEngine(8 * self._width, nhash, b, self._ids, self._stored())
        return self._engine

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the index to an ``.npz`` file (ids, packed codes and the spec; not the trained
        approximate index, which is built again at the first search)."""
        np.savez(
            Path(path),
            format=np.array(_FORMAT),
            version=np.array(_VERSION),
            n_bits=np.array(self.n_bits),
            ids=self._ids,
            codes=self.codes(),
            spec=np.array(self.spec),
        )

    @classmethod
    def load(cls, path: str | Path, n_threads: int | None = None, spec: str | None = None) -> HammingIndex:
        """Read an index written by `save`; ``spec`` overrides the saved kind (files without a
        spec, from before the kinds, are ``"flat"``)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                if str(data["format"]) != _FORMAT:
                    raise SemretError(f"{path} is not a semret Hamming index")
                if int(data["version"]) != _VERSION:
                    raise SemretError(f"{path}: unsupported Hamming index version {int(data['version'])}")
                n_bits, ids, codes = int(data["n_bits"]), data["ids"], data["codes"]
                saved = str(data["spec"]) if "spec" in data.files else "flat"
        except (OSError, KeyError, ValueError) as error:
            raise SemretError(f"cannot read a Hamming index from {path}: {error}") from error
        index = cls.from_spec(spec or saved, n_bits, n_threads=n_threads)
        index.add(ids, codes)
        return index

    # --- helpers -------------------------------------------------------------------------------

    def _pad(self, packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Packed codes zero-padded to whole 64-bit words (C-contiguous)."""
        if packed.shape[1] == self._width:
            return packed
        padded = np.zeros((len(packed), self._width), dtype=np.uint8)
        padded[:, : packed.shape[1]] = packed
        return padded

    def _stored(self) -> npt.NDArray[np.uint8]:
        """The padded codes in faiss' flat index, in id order (a copy)."""
        stored = faiss.vector_to_array(self._flat.xb)  # type: ignore[attr-defined]
        return stored.reshape(self.ntotal, self._width)


def _sorted_rows(
    distances: npt.NDArray[np.int32], ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Rows sorted by (distance, id), padding (2**31 - 1, -1) last. faiss' heaps hand their rows
    back sorted by (distance, label) already, and labels are ids or id-ordered positions unless
    codes were added out of id order: the sort runs only where a row is out of order."""
    if distances.shape[1] < 2:
        return distances, ids
    before, after = distances[:, :-1], distances[:, 1:]
    in_order = (before < after) | ((before == after) & ((ids[:, :-1] <= ids[:, 1:]) | (ids[:, 1:] == NO_ID)))
    if in_order.all():
        return distances, ids
    order = np.lexsort((np.where(ids == NO_ID, np.iinfo(np.int64).max, ids), distances))
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)


class _IvfEngine:
    """`faiss.IndexBinaryIVF` over the codes (under their ids), trained on them."""

    def __init__(self, d: int, nlist: int, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.uint8]) -> None:
        self.nlist = nlist
        self.index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, nlist)
        self.index.train(codes)
        self.add(ids, codes)

    def add(self, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.uint8]) -> None:
        self.index.add_with_ids(codes, ids)
        invlists = self.index.invlists
        self.sizes = np.array([invlists.list_size(i) for i in range(self.nlist)], dtype=np.int64)

    def search(
        self, queries: npt.NDArray[np.uint8], k: int, nprobe: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(distances, ids, codes scanned per query): the probed lists are found once, here, so
        that their sizes give each query's candidates."""
        nprobe = min(nprobe, self.nlist)
        self.index.nprobe = nprobe
        list_distances, lists = self.index.quantizer.search(queries, nprobe)
        distances, ids = self.index.search_preassigned(queries, k, lists, list_distances)
        return distances, ids, np.where(lists >= 0, self.sizes[lists], 0).sum(axis=1)


class _MultiHashEngine:
    """`faiss.IndexBinaryMultiHash` over the codes; its results are insertion positions, mapped to
    ids with one gather. Codes go in with each byte's bits reversed (distances are unchanged), so
    that faiss' table h keys on bits h*b .. (h+1)*b - 1 of semret's bit order, never on padding."""

    def __init__(self, d: int, nhash: int, b: int, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.uint8]) -> None:
        self.nhash, self.b = nhash, b
        self.index = faiss.IndexBinaryMultiHash(d, nhash, b)
        self.ids = np.empty(0, dtype=np.int64)
        self.add(ids, codes)

    def add(self, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.uint8]) -> None:
        self.index.add(_REVERSED_BITS[codes])
        self.ids = np.concatenate([self.ids, ids])

    def search(
        self, queries: npt.NDArray[np.uint8], k: int, nflip: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(distances, ids, codes ranked per query). faiss counts the ranked codes for the batch as
        a whole (``indexBinaryHash_stats.ndis``): each query gets the batch's mean."""
        self.index.nflip = nflip
        stats = faiss.cvar.indexBinaryHash_stats  # type: ignore[attr-defined]
        before = stats.ndis
        distances, positions = self.index.search(_REVERSED_BITS[queries], k)
        ranked = (stats.ndis - before) // max(1, len(queries))
        ids = np.where(positions >= 0, self.ids[positions], NO_ID)
        return distances, ids, np.full(len(queries), ranked, dtype=np.int64)
