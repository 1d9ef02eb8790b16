"""Benchmark: scoring rankings, as `semret eval` does, for 10,000 queries x 250 results.

A synthetic database (seeded) of ``--database`` images in ``--classes`` classes under a random
two-level hierarchy-like similarity (1 within a class, 0.5 within a group of ten classes, else 0),
``--queries`` queries from the database (the published protocol: the query left out), each with a
random ranking of 250 database ids in which about half the results are of the query's class. One
`semret.evaluation.scoring.score_rankings` call computes every metric (mAP, mAHP, P, HP, balanced
accuracy) at k = 1, 5, 10, 15, 20, 100, 250; the best of ``--repeats`` runs is reported.

    uv run python benchmarks/scoring.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine_line

from semret.evaluation.scoring import Ground, score_rankings

KS = (1, 5, 10, 15, 20, 100, 250)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, args.database)
    groups = np.arange(args.classes) // 10
    similarity = np.where(groups[:, None] == groups[None, :], 0.5, 0.0)
    np.fill_diagonal(similarity, 1.0)
    ids = np.arange(args.database, dtype=np.int64)
    queries = rng.choice(args.database, args.queries, replace=False)
    by_class = [ids[labels == c] for c in range(args.classes)]
    rankings = np.empty((args.queries, max(KS)), dtype=np.int64)
    for row, query in enumerate(queries):
        same = rng.choice(by_class[labels[query]], max(KS) // 2)
        other = rng.choice(args.database, max(KS) - len(same))
        ranked = np.concatenate([same, other])
        ranked = np.unique(ranked[ranked != query])
        rng.shuffle(ranked)
        rankings[row] = np.pad(ranked[: max(KS)], (0, max(0, max(KS) - len(ranked))), constant_values=-1)
    ground = Ground(ids, labels, labels[queries], similarity, queries_in_database=True)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        scores = score_rankings(ground, rankings, KS)
        times.append(time.perf_counter() - start)
    print(machine_line())
    print(
        f"score_rankings: {args.queries:,} queries x {max(KS)} results, {args.database:,} images, "
        f"{args.classes} classes, ks {list(KS)}: best {min(times):.2f} s of {args.repeats} "
        f"(all: {', '.join(f'{t:.2f}' for t in times)}); mAP@250 {scores['mAP'][250]:.4f}, "
        f"mAHP@250 {scores['mAHP'][250]:.4f}"
    )


if __name__ == "__main__":
    main()
