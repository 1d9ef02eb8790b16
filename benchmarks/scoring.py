"""Benchmark: scoring rankings, as `semret eval` does, for 10,000 queries x 250 results.

A synthetic database (seeded) of ``--database`` images in ``--classes`` classes under a random
two-level hierarchy-like similarity (1 within a class, 0.5 within a group of ten classes, else 0),
``--queries`` queries from the database (the published protocol: the query left out), each with a
random ranking of 250 database ids in which about half the results are of the query's class. One
`semret.evaluation.scoring.score_rankings` call computes every metric (mAP, mAHP, P, HP, balanced
accuracy) at k = 1, 5, 10, 15, 20, 100, 250; the best of ``--repeats`` runs is reported. Other
metric conventions (`semret.evaluation.conventions`) with ``--convention NAME`` (repeatable; the
ranking with the query, for those where it counts, is the query followed by its ranking), and
``--missing pad`` to fill the places past a ranking's results.

    uv run python benchmarks/scoring.py
    uv run python benchmarks/scoring.py --database 2000 --queries 500 --convention seed-002 --convention hashnet
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine_line

from semret.evaluation.conventions import CONVENTIONS, DEFAULT_CONVENTION
from semret.evaluation.scoring import MISSING, Ground, score_rankings

KS = (1, 5, 10, 15, 20, 100, 250)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--convention", action="append", choices=list(CONVENTIONS), help="repeatable; default semret")
    parser.add_argument("--missing", choices=MISSING, default="zero")
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
    ground = Ground(
        ids, labels, labels[queries], similarity, queries_in_database=True, parents=groups, query_ids=ids[queries]
    )
    with_query = np.concatenate([ids[queries][:, None], rankings[:, :-1]], axis=1)
    print(machine_line())
    for convention in args.convention or [DEFAULT_CONVENTION]:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = score_rankings(
                ground, rankings, KS, convention=convention, ids_with_query=with_query, missing=args.missing
            )
            times.append(time.perf_counter() - start)
        figures = ", ".join(f"{metric}@{max(KS)} {scores[metric][max(KS)]:.4f}" for metric in scores)
        print(
            f"score_rankings ({convention}, missing {args.missing}): {args.queries:,} queries x {max(KS)} results, "
            f"{args.database:,} images, {args.classes} classes, ks {list(KS)}: best {min(times):.2f} s of "
            f"{args.repeats} (all: {', '.join(f'{t:.2f}' for t in times)}); {figures}"
        )


if __name__ == "__main__":
    main()
