"""Benchmark: exact search at 1M x 128 by batch size: semret's exact index, faiss IndexFlatIP, the
numpy CosineIndex of before, and the two scans semret's exact index chooses between (faiss.knn at
>= FAISS_BATCH queries, numpy below; k + margin = 14), k = 10; queries/s, best of 3 (5 below 300
queries). Data: the clustered set of index_sweep.py.

    uv run python benchmarks/exact_batch_sizes.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from common import machine_line
from index_sweep import make_data

from semret.core.cosine import CosineIndex
from semret.indexes import exact, make_index

N, D, K = 1_000_000, 128, 10


def best_rate(search: Callable[[], Any], n_queries: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - start)
    return n_queries / best


def main() -> None:
    print(machine_line())
    data = make_data(N, D, 2000, seed=0)
    ours = make_index("exact", D)
    ours.add(np.arange(N), data.vectors)
    before = CosineIndex(D)
    before.add(np.arange(N), data.vectors)
    flat = faiss.IndexFlatIP(D)
    flat.add(data.vectors)
    array = ours.store.array  # type: ignore[attr-defined]
    print("| queries | semret exact | faiss IndexFlatIP | numpy CosineIndex (before) | faiss.knn scan | numpy scan |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n_queries in (1, 10, 100, 300, 700, 1000, 2000):
        q = data.queries[:n_queries]
        searches: list[Callable[[], Any]] = [
            lambda q=q: ours.search(q, K),
            lambda q=q: flat.search(q, K),
            lambda q=q: before.search(q, K),
            lambda q=q: faiss.knn(q, array, K + 4, metric=faiss.METRIC_INNER_PRODUCT),
            lambda q=q: exact._numpy_top(q, array, K + 4),
        ]
        repeat = 3 if n_queries >= 300 else 5
        rates = [best_rate(search, n_queries, repeat) for search in searches]
        print(f"| {n_queries:,} | " + " | ".join(f"{rate:,.0f}" for rate in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
