"""Benchmark: exact Hamming top-k against faiss, and Hamming shortlist + re-rank against exhaustive cosine.

Each size N makes a synthetic collection (seeded): N random 48-bit codes (uniform bits) and N
random 100-d embeddings (standard normal), ids 0..N-1; and 1,000 queries drawn the same way
(not from the collection); k = 250. Measured, each as one batched ``search`` call over all the
queries (time.perf_counter), best of ``--repeats`` runs (the methods take turns within a run), after
one untimed warm-up call on 10 queries:

- ours: `semret.core.hamming.HammingIndex.search`, the search contract (numpy, its thread pool:
  all CPUs), distances read back with ``to_distance``; and the same kernel without the contract's
  wrapper (``search_distances``), so that the wrapper's cost shows;
- faiss: ``faiss.IndexBinaryFlat.search`` (its OpenMP threads: all CPUs);
- shortlist + re-rank: `SemanticHashIndex` in mode "rerank": the m = 2k = 500 nearest codes by
  Hamming distance, re-ranked by exact cosine similarity (`CosineIndex.search_subset_positions`);
- exhaustive cosine: `SemanticHashIndex` in mode "exact" (`CosineIndex.search`: float32 matrix
  product, `np.partition`, exact re-scoring of the top candidates), on the first
  ``--cosine-queries`` queries only if that is given (queries/s are per query either way).

Our Hamming results are checked against faiss on every query: the distances of each row must be
the same (both are sorted, so the same multiset), or the run fails. As the ids are added in
ascending order, faiss' tie order (distance, insertion position) is ours (distance, id), so the
ids are compared too and reported. Build times are those of ``add`` (faiss: ``add``).

    uv run python benchmarks/hamming_search.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np
import numpy.typing as npt
from common import machine_line

from semret.core.cosine import CosineIndex
from semret.core.hamming import HammingIndex, default_threads
from semret.hashing.retrieval import HashQueries, Mode, SemanticHashIndex

N_BITS = 48
DIM = 100
K = 250
TARGET_FAISS_RATIO = 1.5  # ours may be at most this much slower than faiss
TARGET_RERANK_SPEED_UP = 5.0  # shortlist + re-rank vs exhaustive cosine, at the largest size
WARM_UP_QUERIES = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Method:
    """One way of searching, its build time and its timed runs."""

    name: str
    search: Callable[[int], tuple[npt.NDArray, npt.NDArray]]  # number of queries -> results
    queries: int
    build_s: float
    times: list[float] = field(default_factory=list)

    @property
    def qps(self) -> float:
        return self.queries / min(self.times)

    @property
    def median_s(self) -> float:
        return float(np.median(self.times))


@dataclass
class Row:
    """One line of the table."""

    size: int
    method: Method
    compared: str
    note: str


def build(label: str, action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    log(f"  built {label} in {seconds:.2f} s")
    return seconds


def run_size(size: int, n_queries: int, cosine_queries: int, repeats: int, seed: int, failures: list[str]) -> list[Row]:
    rng = np.random.default_rng([seed, size])
    start = time.perf_counter()
    codes = rng.integers(0, 256, size=(size, N_BITS // 8), dtype=np.uint8)
    embeddings = rng.standard_normal((size, DIM), dtype=np.float32)
    query_codes = rng.integers(0, 256, size=(n_queries, N_BITS // 8), dtype=np.uint8)
    query_embeddings = rng.standard_normal((n_queries, DIM), dtype=np.float32)
    ids = np.arange(size, dtype=np.int64)
    log(f"{size:,} codes and embeddings made in {time.perf_counter() - start:.1f} s")

    ours = HammingIndex(N_BITS)
    reference = faiss.IndexBinaryFlat(N_BITS)
    padded = faiss.IndexBinaryFlat(64)
    padded_codes, padded_queries = (np.pad(c, ((0, 0), (0, 2))) for c in (codes, query_codes))
    semantic = SemanticHashIndex(N_BITS, DIM)  # shortlist None: m = 2k
    ours_build = build("HammingIndex", lambda: ours.add(ids, codes))
    faiss_build = build("faiss.IndexBinaryFlat", lambda: reference.add(codes))
    padded_build = build("faiss.IndexBinaryFlat (64-bit padded)", lambda: padded.add(padded_codes))
    semantic_build = build("SemanticHashIndex (codes + embeddings)", lambda: semantic.add(ids, embeddings, codes))
    cosine_alone = CosineIndex(DIM)  # only its build time: the exhaustive search runs in mode "exact"
    cosine_build = build("CosineIndex alone", lambda: cosine_alone.add(ids, embeddings))
    cosine_alone.reset()

    def in_mode(mode: Mode, n: int) -> tuple[npt.NDArray, npt.NDArray]:
        semantic.mode = mode
        return semantic.search(HashQueries(query_embeddings[:n], query_codes[:n] if mode != "exact" else None), K)

    def ours_search(n: int) -> tuple[npt.NDArray, npt.NDArray]:
        scores, found = ours.search(query_codes[:n], K)  # the search contract, distances read back
        return ours.to_distance(scores), found

    ours_m = Method("ours: HammingIndex", ours_search, n_queries, ours_build)
    # the same kernel without the search contract's wrapper (bounds, exclusion, float scores): its cost
    raw_m = Method(
        "ours, raw search_distances", lambda n: ours.search_distances(query_codes[:n], K), n_queries, ours_build
    )
    faiss_m = Method("faiss.IndexBinaryFlat", lambda n: reference.search(query_codes[:n], K), n_queries, faiss_build)
    padded_m = Method(
        "faiss.IndexBinaryFlat, codes padded to 64 bits",
        lambda n: padded.search(padded_queries[:n], K),
        n_queries,
        padded_build,
    )
    rerank_m = Method(f"shortlist m = {2 * K} + re-rank", lambda n: in_mode("rerank", n), n_queries, semantic_build)
    exact_m = Method("exhaustive cosine", lambda n: in_mode("exact", n), cosine_queries, cosine_build)
    methods = [ours_m, raw_m, faiss_m, padded_m, rerank_m, exact_m]
    for method in methods:
        method.search(WARM_UP_QUERIES)
    results: dict[str, tuple[npt.NDArray, npt.NDArray]] = {}
    for run in range(repeats):
        for method in methods:
            start = time.perf_counter()
            result = method.search(method.queries)
            method.times.append(time.perf_counter() - start)
            results[method.name] = result
            log(f"  run {run + 1}/{repeats}: {method.name}: {method.times[-1]:.3f} s")

    ours_distances, ours_ids = results[ours_m.name]
    checks = []
    for method in (faiss_m, padded_m):
        distances, found = results[method.name]
        same_distances = int(np.sum(np.all(ours_distances == distances, axis=1)))
        same_ids = int(np.sum(np.all(ours_ids == found, axis=1)))
        if same_distances != n_queries:
            failures.append(
                f"{size:,}: Hamming distances differ from {method.name} on {n_queries - same_distances} queries"
            )
        checks.append(f"distances = ours: {same_distances}/{n_queries}; ids = ours: {same_ids}/{n_queries}")
    subset = "" if cosine_queries == n_queries else f" (timed on the first {cosine_queries} queries)"
    return [
        Row(size, ours_m, f"{ours_m.qps / faiss_m.qps:.2f}x faiss' queries/s", "(checked against faiss)"),
        Row(size, raw_m, f"{raw_m.qps / faiss_m.qps:.2f}x; the contract costs {1 - ours_m.qps / raw_m.qps:.0%}", ""),
        Row(size, faiss_m, "1.00x", checks[0]),
        Row(size, padded_m, f"{padded_m.qps / faiss_m.qps:.2f}x", checks[1]),
        Row(size, rerank_m, f"{rerank_m.qps / exact_m.qps:.1f}x exhaustive cosine's queries/s", ""),
        Row(size, exact_m, "1.0x", subset.strip()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="collection sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=1000, help="queries per size (default 1000)")
    parser.add_argument(
        "--cosine-queries", type=int, help="time exhaustive cosine on this many of the queries (default all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method, best one counts (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cosine_queries = min(args.cosine_queries or args.queries, args.queries)

    run_start = time.perf_counter()
    rows: list[Row] = []
    failures: list[str] = []
    for size in sizes:
        rows += run_size(size, args.queries, cosine_queries, args.repeats, args.seed, failures)
    wall_s = time.perf_counter() - run_start

    print(machine_line())
    print(
        f"numpy {np.__version__}, faiss {faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads), "
        f"HammingIndex threads {default_threads()}; {N_BITS}-bit random codes, {DIM}-d random embeddings; "
        f"{args.queries:,} random queries; k = {K}; best of {args.repeats} runs; seed {args.seed}; "
        f"whole run {wall_s:.0f} s\n"
    )
    print("| N | method | build s | queries/s (best) | median s per batch | comparison | check |")
    print("|---:|---|---:|---:|---:|---|---|")
    for row in rows:
        m = row.method
        print(
            f"| {row.size:,} | {m.name} | {m.build_s:.2f} | {m.qps:,.0f} | {m.median_s:.3f} | "
            f"{row.compared} | {row.note} |"
        )
    ours = [r for r in rows if r.method.name.startswith("ours")]
    references = [r for r in rows if r.method.name == "faiss.IndexBinaryFlat"]
    within = all(o.method.qps * TARGET_FAISS_RATIO >= f.method.qps for o, f in zip(ours, references, strict=True))
    largest = max(sizes)
    by_name = {r.method.name: r.method for r in rows if r.size == largest}
    speed_up = by_name[f"shortlist m = {2 * K} + re-rank"].qps / by_name["exhaustive cosine"].qps
    print(
        f"\nTargets: ours within {TARGET_FAISS_RATIO}x of faiss' queries/s at every N: "
        + ("yes" if within else "NO")
        + f"; shortlist + re-rank >= {TARGET_RERANK_SPEED_UP:.0f}x exhaustive cosine at {largest:,}: "
        + ("yes" if speed_up >= TARGET_RERANK_SPEED_UP else "NO")
        + f" ({speed_up:.1f}x)"
    )
    if failures:
        print("\nFAILED:\n" + "\n".join(f"- {f}" for f in failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
