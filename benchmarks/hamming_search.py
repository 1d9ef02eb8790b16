"""Benchmark: semret's Hamming search (on faiss) against the raw faiss indexes it wraps.

Each size N makes a synthetic collection (seeded) of N 48-bit codes, ids 0..N-1, and 1,000 queries
drawn the same way (not from the collection). ``--codes random``: uniform random bits (every bit a
coin); ``clustered``: 1,000 random centres, each code a centre with 10% of its bits flipped (codes
of one class sit near each other, as semantic hashes do; the queries too). Per N and k (default
250 and 10), each method answers the whole batch in one call (time.perf_counter), ``--repeats``
times, the methods taking turns within a repeat (in reverse order every other repeat, so that no
method always follows the same one), after one untimed warm-up; the median time counts.

- semret flat: `HammingIndex` (kind "flat"), through the search contract (``search``, distances
  read back with ``to_distance``): codes zero-padded to 64 bits in `faiss.IndexBinaryFlat`,
  positions mapped to ids with a gather;
- raw faiss flat: ``faiss.IndexBinaryFlat(64)`` on the same padded codes (queries padded before
  the clock starts), ``search``, with semret's ``query_batch_size`` (`semret.core.hamming.QUERY_BATCH`):
  the same parameters, so the ratio semret / raw is the wrapper's cost; and with faiss' default
  query batch (32), which on busy shared cores loses much time in OpenMP barriers;
- numpy (before): `semret.core.hamming_numpy.NumpyHammingKernel`, the pure numpy kernel
  `HammingIndex` used before it moved onto faiss, ids gathered the same way;
- semret ivf / raw faiss IndexBinaryIVF with the same nlist (sqrt N) and nprobe;
- semret multihash / raw faiss IndexBinaryMultiHash with the same nhash, b, nflip, on the codes
  with each byte's bits reversed as semret hands them to faiss (the same hash tables; the
  reversal of the queries is timed).

Threads: faiss' OpenMP default (all CPUs) for all, the numpy kernel its thread pool (all CPUs);
``--threads N`` sets both.
Checks (the run fails otherwise): semret flat equals raw faiss flat on every query (distances and
ids: ids are added in ascending order, so faiss' tie order (distance, position) is semret's
(distance, id)), and the numpy kernel equals semret flat. Recall of the approximate ones against
the exact top k: by ids (|found ids in the exact k| / k) and by distances (a code at the same
distance as an exact result counts: the multiset of distances matched, / k; random codes have many
ties at the k-th distance, so the id recall understates them). Build: ``add`` (plus the first
one-query search, which trains the IVF / fills the hash tables, for semret's approximate kinds).
Memory: the process' resident set grown by each build (VmRSS, after the build; faiss and numpy
allocate from the same heap, so it is a rough figure).

    uv run python benchmarks/hamming_search.py [--sizes 100000,1000000] [--codes random|clustered]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np
import numpy.typing as npt
from common import machine_line

from semret.core.hamming import QUERY_BATCH, HammingIndex, default_threads
from semret.core.hamming_numpy import NumpyHammingKernel

N_BITS = 48
WIDTH = 8  # bytes of a code padded to 64 bits
TARGET_FLAT_RATIO = 0.9  # semret flat >= 0.9x raw faiss flat at the largest N
NPROBE = 16
NFLIP = 2
WARM_UP_QUERIES = 10
#: Each byte's bits reversed, as `HammingIndex` hands codes to faiss' hash tables.
REVERSED_BITS = np.array([int(f"{value:08b}"[::-1], 2) for value in range(256)], dtype=np.uint8)

Result = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """This process' resident set, MiB (Linux; 0 elsewhere), after handing freed heap back to the
    system (glibc's ``malloc_trim``), so that a build's growth shows."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Method:
    """One way of searching: its build cost and its timed runs per k."""

    name: str
    search: Callable[[npt.NDArray[np.uint8], int], Result]  # (queries, k) -> (distances, ids)
    build_s: float
    memory_mb: float
    exact: bool
    times: dict[int, list[float]] = field(default_factory=dict)
    results: dict[int, Result] = field(default_factory=dict)

    def median_s(self, k: int) -> float:
        return float(np.median(self.times[k]))


def built(name: str, make: Callable[[], Callable[[npt.NDArray[np.uint8], int], Result]], exact: bool) -> Method:
    """Build a method, timing it and measuring the memory it took."""
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    search = make()
    seconds = time.perf_counter() - start
    gc.collect()
    memory = rss_mb() - before
    log(f"  built {name} in {seconds:.2f} s, +{memory:.0f} MiB")
    return Method(name, search, seconds, memory, exact)


def make_codes(kind: str, size: int, n_queries: int, seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    rng = np.random.default_rng([seed, size])
    if kind == "random":
        return (
            rng.integers(0, 256, size=(size, N_BITS // 8), dtype=np.uint8),
            rng.integers(0, 256, size=(n_queries, N_BITS // 8), dtype=np.uint8),
        )
    centres = rng.integers(0, 2, size=(1_000, N_BITS), dtype=np.uint8)

    def around(n: int) -> npt.NDArray[np.uint8]:
        bits = centres[rng.integers(0, len(centres), size=n)] ^ (rng.random((n, N_BITS)) < 0.1)
        return np.packbits(bits, axis=1)

    return around(size), around(n_queries)


def recalls(found: Result, exact: Result, k: int) -> tuple[float, float]:
    """(recall by ids, recall by distances) of ``found`` against the exact top k."""
    (distances, ids), (exact_distances, exact_ids) = found, exact
    rows = np.arange(len(ids))[:, None]
    span = int(max(ids.max(), exact_ids.max())) + 2
    by_ids = np.isin((rows * span + ids)[ids >= 0], (rows * span + exact_ids).ravel()).sum()
    bins = N_BITS + 1
    real = ids >= 0
    histogram = np.bincount((rows * bins + np.where(real, distances, 0))[real], minlength=len(ids) * bins)
    exact_histogram = np.bincount((rows * bins + exact_distances).ravel(), minlength=len(ids) * bins)
    by_distances = np.minimum(histogram, exact_histogram).sum()
    total = exact_ids.size
    return float(by_ids / total), float(by_distances / total)


def run_size(
    size: int,
    codes_kind: str,
    n_queries: int,
    ks: list[int],
    repeats: int,
    seed: int,
    threads: int | None,
    failures: list[str],
) -> tuple[list[str], dict[int, float]]:
    """The table lines of one size, and semret flat's queries/s over raw faiss flat's per k."""
    codes, queries = make_codes(codes_kind, size, n_queries, seed)
    padded, padded_queries = (np.pad(c, ((0, 0), (0, WIDTH - N_BITS // 8))) for c in (codes, queries))
    ids = np.arange(size, dtype=np.int64)
    nlist = math.isqrt(size)
    b = round(math.log2(size))
    nhash = N_BITS // b
    log(f"{size:,} {codes_kind} codes; nlist {nlist}, nprobe {NPROBE}; nhash {nhash}, b {b}, nflip {NFLIP}")

    def semret(kind: str, **params: int) -> Callable[[], Callable[[npt.NDArray[np.uint8], int], Result]]:
        def make() -> Callable[[npt.NDArray[np.uint8], int], Result]:
            index = HammingIndex(N_BITS, threads, kind, **params)  # type: ignore[arg-type]
            index.add(ids, codes)
            if kind != "flat":
                index.search(queries[:1], 1)  # trains / fills the approximate index

            def search(q: npt.NDArray[np.uint8], k: int) -> Result:
                scores, found = index.search(q, k)  # the search contract, distances read back
                return index.to_distance(scores), found

            return search

        return make

    def raw_flat(query_batch: int | None) -> Callable[[], Callable[[npt.NDArray[np.uint8], int], Result]]:
        def make() -> Callable[[npt.NDArray[np.uint8], int], Result]:
            index = faiss.IndexBinaryFlat(8 * WIDTH)
            if query_batch is not None:
                index.query_batch_size = query_batch
            index.add(padded)
            return lambda q, k: index.search(q, k)

        return make

    def raw_ivf() -> Callable[[npt.NDArray[np.uint8], int], Result]:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(8 * WIDTH), 8 * WIDTH, nlist)
        index.train(padded)
        index.add_with_ids(padded, ids)
        index.nprobe = NPROBE
        return lambda q, k: index.search(q, k)

    def raw_multihash() -> Callable[[npt.NDArray[np.uint8], int], Result]:
        # On the codes with each byte's bits reversed, as semret hands them over: the same tables
        # (bits h*b .. (h+1)*b - 1 each), so that the two do the same work.
        index = faiss.IndexBinaryMultiHash(8 * WIDTH, nhash, b)
        index.add(REVERSED_BITS[padded])
        index.nflip = NFLIP
        return lambda q, k: index.search(REVERSED_BITS[q], k)

    def numpy_kernel() -> Callable[[npt.NDArray[np.uint8], int], Result]:
        kernel = NumpyHammingKernel(codes, N_BITS, n_threads=threads)
        return lambda q, k: (lambda d, p: (d, ids[p]))(*kernel.search_positions(q[:, : N_BITS // 8], k))

    methods = [
        built("semret flat", semret("flat"), True),
        built("raw faiss IndexBinaryFlat", raw_flat(QUERY_BATCH), True),
        built("raw faiss IndexBinaryFlat, faiss' default query batch", raw_flat(None), True),
        built("numpy kernel (before)", numpy_kernel, True),
        built("semret ivf", semret("ivf", nlist=nlist, nprobe=NPROBE), False),
        built("raw faiss IndexBinaryIVF", raw_ivf, False),
        built("semret multihash", semret("multihash", nhash=nhash, b=b, nflip=NFLIP), False),
        built("raw faiss IndexBinaryMultiHash", raw_multihash, False),
    ]
    raw_names = {m.name for m in methods if m.name.startswith("raw")}
    for k in ks:
        for method in methods:
            method.search(
                padded_queries[:WARM_UP_QUERIES] if method.name in raw_names else queries[:WARM_UP_QUERIES], k
            )
            method.times[k] = []
        for repeat in range(repeats):
            for method in methods if repeat % 2 == 0 else methods[::-1]:  # no method always goes first
                q = padded_queries if method.name in raw_names else queries
                start = time.perf_counter()
                method.results[k] = method.search(q, k)
                method.times[k].append(time.perf_counter() - start)
            log(f"  k = {k}, repeat {repeat + 1}/{repeats}: " + ", ".join(f"{m.times[k][-1]:.3f}" for m in methods))

    lines = []
    by_name = {m.name: m for m in methods}
    pairs = {"semret flat": "raw faiss IndexBinaryFlat", "semret ivf": "raw faiss IndexBinaryIVF"}
    pairs["semret multihash"] = "raw faiss IndexBinaryMultiHash"
    for k in ks:
        exact = by_name["semret flat"].results[k]
        for other in (
            "raw faiss IndexBinaryFlat",
            "raw faiss IndexBinaryFlat, faiss' default query batch",
            "numpy kernel (before)",
        ):
            d, found = by_name[other].results[k]
            same = int(np.sum(np.all((d == exact[0]) & (found == exact[1]), axis=1)))
            if same != n_queries:
                failures.append(f"{size:,}, k = {k}: {other} differs from semret flat on {n_queries - same} queries")
        for method in methods:
            qps = n_queries / method.median_s(k)
            spread = f"{min(method.times[k]):.3f}-{max(method.times[k]):.3f}"
            against = pairs.get(
                method.name, "semret flat" if method.name.startswith(("numpy", "raw faiss IndexBinaryFlat,")) else None
            )
            if against is None:
                ratio = "1.00x"
            else:
                other = by_name[against]
                ratio = (
                    f"{other.median_s(k) / method.median_s(k):.2f}x (best: "
                    f"{min(other.times[k]) / min(method.times[k]):.2f}x) {'raw' if against in raw_names else against}"
                )
            if method.exact:
                quality = "exact (checked)" if method.name != "semret flat" else "exact"
            else:
                by_ids, by_distances = recalls(method.results[k], exact, k)
                quality = f"{by_ids:.3f} / {by_distances:.3f}"
            lines.append(
                f"| {size:,} | {k} | {method.name} | {method.build_s:.2f} | {method.memory_mb:.0f} | "
                f"{qps:,.0f} | {method.median_s(k):.3f} ({spread}) | {ratio} | {quality} |"
            )
    flat_ratio = {k: by_name["raw faiss IndexBinaryFlat"].median_s(k) / by_name["semret flat"].median_s(k) for k in ks}
    return lines, flat_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="collection sizes, comma-separated")
    parser.add_argument("--codes", choices=["random", "clustered"], default="random", help="code distribution")
    parser.add_argument("--queries", type=int, default=1000, help="queries per size (default 1000)")
    parser.add_argument("--k", default="250,10", help="k values, comma-separated (default 250,10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method, the median counts (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, help="threads for faiss (all of it) and semret (default: all CPUs)")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)

    run_start = time.perf_counter()
    lines: list[str] = []
    failures: list[str] = []
    ratios: dict[int, float] = {}
    for size in sizes:
        size_lines, ratios = run_size(
            size, args.codes, args.queries, ks, args.repeats, args.seed, args.threads, failures
        )
        lines += size_lines
    wall_s = time.perf_counter() - run_start

    print(machine_line())
    print(
        f"numpy {np.__version__}, faiss {faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads), "
        f"numpy kernel threads {args.threads or default_threads()}; {N_BITS}-bit {args.codes} codes; "
        f"{args.queries:,} queries; "
        f"median of {args.repeats} runs; seed {args.seed}; load average before the run "
        f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}; whole run {wall_s:.0f} s\n"
    )
    print(
        "| N | k | method | build s | memory MiB | queries/s (median) | median s per batch (min-max) | "
        "vs | recall@k by ids / by distances |"
    )
    print("|---:|---:|---|---:|---:|---:|---|---|---|")
    print("\n".join(lines))
    verdicts = "; ".join(
        f"k = {k}: {ratio:.2f}x " + ("yes" if ratio >= TARGET_FLAT_RATIO else "NO") for k, ratio in ratios.items()
    )
    print(f"\nTarget: semret flat >= {TARGET_FLAT_RATIO}x raw faiss IndexBinaryFlat at {max(sizes):,}: {verdicts}")
    if failures:
        print("\nFAILED:\n" + "\n".join(f"- {f}" for f in failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
