"""Benchmark: neural LSH as published (``neural-lsh``, PermGNN) beside semret's variant
(``neural-lsh-knn``) and random-hyperplane ``lsh``, with exact cosine kNN as the reference, in one run.

Data: a features file (``--features``: a ``.npy`` array (n, d), or a ``.npz`` with ``features`` and
optionally ``labels``, as `semret features` and `semret.vision.arrays` write them), or synthetic
clustered vectors (``--synthetic``: ``--clusters`` Gaussian centres N(0, I) in R^d, each point its
centre plus ``--spread`` x N(0, I) noise; the cluster is its label). ``--queries`` points (seeded)
are held out of the database and serve as queries.

Each index is built on the database (build = ``fit`` with the labels where there are any, which
only ``neural-lsh:neighbours_by=label`` reads, + ``add``; seconds by time.perf_counter) and
searched with every query in one batch: recall@10 against the exact cosine top 10, mean candidates
scored (``last_candidates``) and their share of the database, and queries/s (the best of 2 batched
searches after an untimed warm-up on 10 queries). The default indexes:

- ``exact``: every vector scored (the reference);
- ``lsh:n_bits=8,n_tables=10``: random hyperplanes, 10 tables of 8 bits (the published tables'
  shape, with independent hyperplanes per table);
- ``neural-lsh``: the published defaults (one 16-bit code, 10 tables of 8 of its bits, kNN-graph
  non-neighbours, up to 200 epochs); with labels also ``neural-lsh:neighbours_by=label``;
- ``neural-lsh-knn``: semret's variant with its defaults (10 tables of 16 learned bits).

``--spec`` (repeatable) replaces that list. The machine's 1-minute load average before and after
is printed: on a shared machine other work slows every figure.

    uv run python benchmarks/neural_lsh_compare.py --synthetic
    uv run python benchmarks/neural_lsh_compare.py --features features.npz
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from common import machine_line

from semret.core.spec import parse_spec
from semret.indexes import VectorIndex, make_index
from semret.indexes.base import index_class

K = 10
WARM_UP_QUERIES = 10
REPEATS = 2


@dataclass
class Data:
    database: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64] | None
    name: str


@dataclass
class Row:
    spec: str
    build_s: float
    recall: float
    candidates: float
    share: float
    qps: float


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    """The 1-minute load average: other work on the machine slows every measurement."""
    return f"{os.getloadavg()[0]:.1f}"


def split(
    vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None, n_queries: int, seed: int, name: str
) -> Data:
    """Hold ``n_queries`` random points (seeded) out of the database as queries."""
    if not 0 < n_queries < len(vectors):
        raise SystemExit(f"--queries must be between 1 and {len(vectors) - 1}, got {n_queries}")
    order = np.random.default_rng(seed).permutation(len(vectors))
    queries, database = np.sort(order[:n_queries]), np.sort(order[n_queries:])
    return Data(vectors[database], vectors[queries], None if labels is None else labels[database], name)


def read_features(path: Path, n_queries: int, seed: int) -> Data:
    """A ``.npy`` array or a ``.npz`` with ``features`` (and ``labels``)."""
    if path.suffix == ".npy":
        vectors, labels = np.load(path), None
    else:
        with np.load(path, allow_pickle=False) as archive:
            if "features" not in archive.files:
                raise SystemExit(f"{path}: no 'features' array (it has {', '.join(archive.files)})")
            vectors = archive["features"]
            labels = archive["labels"].astype(np.int64) if "labels" in archive.files else None
    if vectors.ndim != 2:
        raise SystemExit(f"{path}: features must be (n, d), got {vectors.shape}")
    return split(
        vectors.astype(np.float32), labels, n_queries, seed, f"{path.name}: {vectors.shape[0]:,} x {vectors.shape[1]}"
    )


def synthetic(n: int, d: int, clusters: int, spread: float, n_queries: int, seed: int) -> Data:
    """Gaussian clusters (the module docstring); labels are the clusters."""
    rng = np.random.default_rng([seed, n, d])
    centres = rng.standard_normal((clusters, d))
    labels = rng.integers(0, clusters, n + n_queries)
    points = (centres[labels] + spread * rng.standard_normal((n + n_queries, d))).astype(np.float32)
    name = f"synthetic: {n + n_queries:,} x {d}, {clusters} clusters, spread {spread:g}"
    return split(points, labels.astype(np.int64), n_queries, seed, name)


def default_specs(has_labels: bool) -> list[str]:
    specs = ["exact", "lsh:n_bits=8,n_tables=10", "neural-lsh"]
    if has_labels:
        specs.append("neural-lsh:neighbours_by=label")
    return [*specs, "neural-lsh-knn"]


def build(spec: str, data: Data, seed: int) -> tuple[VectorIndex, float]:
    """The index of ``spec`` (the run's seed where the spec gives none), fitted and filled: (index, seconds)."""
    parsed = parse_spec(spec, "index spec")
    params = dict(parsed.params)
    if "seed" in index_class(parsed.kind).param_names():
        params.setdefault("seed", seed)
    index = make_index(parsed.kind, data.database.shape[1], **params)
    start = time.perf_counter()
    if index.needs_fit:
        index.fit(data.database, data.labels)
    index.add(np.arange(len(data.database)), data.database)
    return index, time.perf_counter() - start


def queries_per_second(index: VectorIndex, queries: npt.NDArray[np.float32]) -> float:
    index.search(queries[:WARM_UP_QUERIES], K)
    best = np.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        index.search(queries, K)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best


def measure(spec: str, data: Data, truth: npt.NDArray[np.int64] | None, seed: int) -> tuple[Row, npt.NDArray[np.int64]]:
    index, build_s = build(spec, data, seed)
    _, found = index.search(data.queries, K)
    candidates = float(index.last_candidates.mean())
    qps = queries_per_second(index, data.queries)
    reference = found if truth is None else truth
    recall = float(np.mean([len(set(t) & set(f)) / K for t, f in zip(reference, found, strict=True)]))
    return Row(spec, build_s, recall, candidates, candidates / len(data.database), qps), found


def table(rows: list[Row]) -> str:
    lines = [
        "| index | build s | recall@10 | candidates / query | share of database | queries/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row.spec}` | {row.build_s:.2f} | {row.recall:.3f} | {row.candidates:,.0f} | "
            f"{100 * row.share:.2f}% | {row.qps:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", type=Path, help="a .npy (n, d) array or a .npz with features (and labels)")
    source.add_argument("--synthetic", action="store_true", help="Gaussian clusters instead of a features file")
    parser.add_argument("--n", type=int, default=10_000, help="synthetic: database + queries (default 10000)")
    parser.add_argument("--dim", type=int, default=128, help="synthetic: dimension (default 128)")
    parser.add_argument("--clusters", type=int, default=50, help="synthetic: clusters (default 50)")
    parser.add_argument("--spread", type=float, default=0.8, help="synthetic: noise scale (default 0.8)")
    parser.add_argument("--queries", type=int, default=1000, help="queries held out of the database (default 1000)")
    parser.add_argument("--spec", action="append", help="an index spec (repeatable; default: the module docstring's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the split and the indexes (default 0)")
    args = parser.parse_args()

    if args.synthetic:
        data = synthetic(args.n - args.queries, args.dim, args.clusters, args.spread, args.queries, args.seed)
    else:
        data = read_features(args.features, args.queries, args.seed)
    specs = args.spec or default_specs(data.labels is not None)
    for spec in specs:
        parse_spec(spec, "index spec")  # a malformed spec stops the run before any work

    load_before = load()
    exact = make_index("exact", data.database.shape[1])
    exact.add(np.arange(len(data.database)), data.database)
    truth = exact.search(data.queries, K)[1]
    rows = []
    for spec in specs:
        log(f"{spec} ...")
        row, _ = measure(spec, data, truth, args.seed)
        log(f"  built in {row.build_s:.2f} s, recall@10 {row.recall:.3f}, {row.candidates:,.0f} candidates")
        rows.append(row)

    print(f"Command: uv run python benchmarks/neural_lsh_compare.py {shlex.join(sys.argv[1:])}")
    print(machine_line())
    print(
        f"Data: {data.name}; database {len(data.database):,}, queries {len(data.queries):,}; "
        f"1-minute load average {load_before} before, {load()} after"
    )
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
