"""Benchmark: recall@10 against queries/s for every vector index over a sweep of its parameters.

Data (seeded, float32, generated per (N, d); the queries are drawn from the same distribution, not
taken from the database): C = 1,000 cluster centres, uniform on the unit sphere of R^d; each point
picks a centre c uniformly at random and is ``c + sigma_c * g / sqrt(d)`` with g standard normal and
a spread sigma_c per cluster, uniform in [0.75, 1.25] (so the noise has about the centre's norm:
two points of a cluster have cosine about 1 / (1 + sigma_c^2), 0.4 to 0.64); then L2-normalised. Nearly
all of a query's true 10 nearest neighbours lie in its own cluster, but a cluster is far from tight
(the noise is as large as the centre); the output gives their mean cosines per data set.

Ground truth: the exact cosine top 10 (`make_index("exact", d)`), once per data set; that search
is also the "exact" row. Each configuration: build = ``fit`` (kinds that need it; never given
labels) + ``add`` of all N vectors; search parameters that the index reads at search time
(``n_probes`` of lsh, ``n_probe`` of kmeans) are swept on one built index. Measured per
configuration: recall@10 (mean over queries of |found ∩ true top 10| / 10), mean candidates
scored (``last_candidates``) and queries/s: one batched ``search`` over all the queries
(time.perf_counter), after an untimed warm-up on 10 queries: the best of 2 batches, or of more
(up to 10) while they add up to under 1 s; a batch over 5 s is not repeated. A pilot search on 20
queries estimates the batch time first: a configuration whose batch would take over
``--max-search-s`` (8 s) is measured on fewer queries, at least 50 (the "queries" column says how
many). The 1-minute load average before and after each data set is printed: the machine may be
shared, and other work slows every figure.

The default sweep, per data set (N, d), K0 = round(sqrt(N)):

- exact;
- lsh: n_bits in {8, 12, 16} x n_tables in {1, 4, 16} x n_probes in {0, 2};
- kmeans: n_clusters in {K0, 4 K0} x pca_components in {none, 50} x n_probe in {1, 2, 4, 8, 16,
  32}; at N > 100,000 only n_clusters = K0 (the ``add`` of 4 K0 clusters takes minutes there);
- neural-lsh: its defaults (16 bits, 10 tables; fit on its sample of 20,000 vectors), and the
  variants n_bits = 8 and n_bits = 12 at N <= 100,000, d = 128.

``lsh_vs_knn.png`` ("query time against database size", as in the published LSH-vs-kNN plot):
mean time per query (batch time / queries) at N = 1k, 10k, 100k, 1M (d = 128) for exact, lsh and
kmeans, each at one setting chosen on the largest d = 128 sweep (the fastest with recall@10 >=
0.9, else the best recall at least as fast as exact, else the best recall), kept the same at every
N, except that kmeans' n_clusters is round(sqrt(N)) times the chosen multiple of K0.

``--features FILE.npz`` (a features file, as ``semret features extract --out`` writes) measures on
real vectors instead: the file's rows, L2-normalised, in a seeded random order; the last
``--queries`` rows are the queries and stay out of the database (or ``--query-features`` gives
them); each size N is the first N of the others. Sizes and curve sizes default to 1,000, 10,000 and
every database row, d to the file's.

Target (issue): at recall@10 >= 0.9, at least one approximate index at least 5x exact's queries/s
at N = 1,000,000, d = 128.

    uv run python benchmarks/index_sweep.py
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from common import machine_line

from semret.core.cosine import normalise
from semret.indexes import VectorIndex, index_kinds, make_index

# The kinds register themselves when their modules are imported.
for _module in ("lsh", "kmeans", "neural_lsh"):
    with contextlib.suppress(ImportError):  # not there (yet): the kind is reported as skipped
        importlib.import_module(f"semret.indexes.{_module}")

T = TypeVar("T")
K = 10
N_CENTRES = 1000
SIGMA_RANGE = (0.75, 1.25)
TARGET_RECALL = 0.9
TARGET_SPEED_UP = 5.0
TARGET_N, TARGET_D = 1_000_000, 128
WARM_UP_QUERIES = 10
PILOT_QUERIES = 20
MIN_QUERIES = 50  # a slow configuration is still measured on at least this many queries
REPEATS = 2
NO_REPEAT_S = 5.0  # a batch slower than this is not repeated
MIN_TOTAL_S = 1.0  # fast batches are repeated until the runs add up to this
MAX_REPEATS = 10
KINDS = ("exact", "lsh", "kmeans", "neural-lsh")
SEARCH_PARAMS = {"lsh": "n_probes", "kmeans": "n_probe"}  # read at search time: swept on one index
COLOURS = {"exact": "black", "lsh": "tab:blue", "kmeans": "tab:orange", "neural-lsh": "tab:green"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data ------------------------------------------------------------------------------------


@dataclass
class DataSet:
    n: int
    d: int
    vectors: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    truth: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, K), dtype=np.int64))
    cosines: str = ""


@dataclass
class RealVectors:
    """``--features``: a file's vectors (L2-normalised), the database rows in a seeded random order
    (so each size is a random sample of the file), and its queries."""

    database: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    source: str


REAL: RealVectors | None = None  # set by --features: every data set is then cut from it


def load_real(path: Path, query_path: Path | None, n_queries: int, seed: int) -> RealVectors:
    """The database and query vectors of ``--features`` (and ``--query-features``; without it the
    last ``n_queries`` rows of a seeded shuffle of the file are the queries, out of the database)."""
    with np.load(path) as data:
        features = np.asarray(data["features"])
        vectors = normalise(features, features.shape[1], f"--features {path}")
    order = np.random.default_rng(seed).permutation(len(vectors))
    if query_path is None:
        if n_queries >= len(vectors):
            raise SystemExit(f"--features {path}: {len(vectors):,} vectors, not more than --queries {n_queries:,}")
        database, queries = vectors[order[:-n_queries]], vectors[order[-n_queries:]]
        source = f"{path.name} ({len(vectors):,} vectors, {n_queries:,} of them held out as queries)"
    else:
        with np.load(query_path) as data:
            features = np.asarray(data["features"])
            held = normalise(features, features.shape[1], f"--query-features {query_path}")
        rows = np.random.default_rng(seed).permutation(len(held))[:n_queries]
        database, queries = vectors[order], held[np.sort(rows)]
        source = f"{path.name} ({len(vectors):,} vectors), queries from {query_path.name} ({len(queries):,})"
    return RealVectors(database, queries, source)


def make_data(n: int, d: int, n_queries: int, seed: int) -> DataSet:
    """The clustered data of the module docstring: n vectors and n_queries queries, unit float32;
    with ``--features``, the first n of the file's shuffled vectors and its queries."""
    if REAL is not None:
        if n > len(REAL.database) or d != REAL.database.shape[1]:
            raise SystemExit(
                f"--features: asked for N = {n:,}, d = {d}; the file has {len(REAL.database):,} database "
                f"vectors of d = {REAL.database.shape[1]}"
            )
        return DataSet(n, d, REAL.database[:n], REAL.queries)
    rng = np.random.default_rng([seed, n, d])
    centres = rng.standard_normal((N_CENTRES, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spreads = rng.uniform(*SIGMA_RANGE, size=N_CENTRES).astype(np.float32) / np.float32(math.sqrt(d))
    total = n + n_queries
    out = np.empty((total, d), dtype=np.float32)
    step = 1 << 16
    for start in range(0, total, step):  # in pieces: no float64 or second full-size copy
        stop = min(start + step, total)
        labels = rng.integers(0, N_CENTRES, size=stop - start)
        block = rng.standard_normal((stop - start, d), dtype=np.float32)
        block *= spreads[labels, None]
        block += centres[labels]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return DataSet(n, d, out[:n], out[n:])


# --- configurations --------------------------------------------------------------------------


@dataclass
class Config:
    """One index to build and the search-time settings to sweep on it."""

    kind: str
    build: dict[str, Any]
    sweep: list[dict[str, Any]] = field(default_factory=lambda: [{}])


def sweep_configs(n: int, d: int, kinds: list[str], quick: bool, skipped: list[str]) -> list[Config]:
    """The default sweep of the module docstring for one data set (N, d)."""
    configs = [Config("exact", {})]
    k0 = max(1, round(math.sqrt(n)))
    if "lsh" in kinds:
        for n_bits in (8, 12, 16):
            for n_tables in (1, 4, 16):
                configs.append(
                    Config("lsh", {"n_bits": n_bits, "n_tables": n_tables}, [{"n_probes": 0}, {"n_probes": 2}])
                )
    if "kmeans" in kinds:
        multiples = (1, 4) if n <= 100_000 else (1,)
        if n > 100_000:
            skipped.append(f"N = {n:,}, d = {d}: kmeans with n_clusters = 4 x {k0} (its add is too slow)")
        for multiple in multiples:
            for pca in (None, 50) if d > 50 else (None,):  # PCA to 50 only reduces vectors of more dims
                clusters = multiple * k0
                probes = [p for p in (1, 2, 4, 8, 16, 32) if p <= clusters]
                configs.append(
                    Config(
                        "kmeans",
                        {"n_clusters": clusters, "pca_components": pca},
                        [{"n_probe": p} for p in probes],
                    )
                )
    if "neural-lsh" in kinds:
        extra: dict[str, Any] = {"epochs": 1, "fit_sample": 5000} if quick else {}
        configs.append(Config("neural-lsh", dict(extra)))
        if n <= 100_000 and d == 128:
            for n_bits in (8, 12):
                configs.append(Config("neural-lsh", {"n_bits": n_bits, **extra}))
    return configs


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    n: int
    d: int
    kind: str
    params: dict[str, Any]
    build_s: float
    recall: float
    candidates: float
    qps: float
    queries: int
    runs: int

    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.params.items() if value is not None) or "-"


def recall_at_k(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    """Mean over queries of |found ∩ truth| / k (both (queries, k); -1 ids never match)."""
    hits = (found[:, :, None] == truth[:, None, :]) & (found[:, :, None] >= 0)
    return float(hits.any(axis=2).sum(axis=1).mean() / truth.shape[1])


def timed_search(
    index: VectorIndex, queries: npt.NDArray[np.float32], max_search_s: float
) -> tuple[npt.NDArray[np.int64], int, float, int, float]:
    """Warm up, pilot, then the timed batches: (ids, queries used, best s, runs, mean candidates)."""
    index.search(queries[:WARM_UP_QUERIES], K)
    start = time.perf_counter()
    index.search(queries[:PILOT_QUERIES], K)
    estimate = (time.perf_counter() - start) * len(queries) / min(PILOT_QUERIES, len(queries))
    used = len(queries)
    if estimate > max_search_s:
        used = max(MIN_QUERIES, min(len(queries), int(len(queries) * max_search_s / estimate) // 50 * 50))
    ids, times = timed_batches(lambda: index.search(queries[:used], K)[1])
    return ids, used, min(times), len(times), float(index.last_candidates.mean())


def timed_batches(search: Callable[[], T]) -> tuple[T, list[float]]:
    """Time ``search`` at least `REPEATS` times (once if it takes over `NO_REPEAT_S`), and again
    while all runs together took under `MIN_TOTAL_S` (at most `MAX_REPEATS` runs): (result, times)."""
    times: list[float] = []
    while True:
        start = time.perf_counter()
        ids = search()
        times.append(time.perf_counter() - start)
        if times[-1] > NO_REPEAT_S or len(times) >= MAX_REPEATS:
            return ids, times
        if len(times) >= REPEATS and sum(times) >= MIN_TOTAL_S:
            return ids, times


def build_index(config: Config, data: DataSet) -> tuple[VectorIndex, float]:
    index = make_index(config.kind, data.d, **config.build)
    start = time.perf_counter()
    if index.needs_fit:
        index.fit(data.vectors)
    index.add(np.arange(data.n, dtype=np.int64), data.vectors)
    return index, time.perf_counter() - start


def measure(config: Config, data: DataSet, max_search_s: float) -> list[Result]:
    """Build one index, then search with each setting of its sweep."""
    log(f"  building {config.kind} {config.build} ...")
    index, build_s = build_index(config, data)
    log(f"  built in {build_s:.1f} s")
    results = []
    for setting in config.sweep:
        for name, value in setting.items():
            if not hasattr(index, name):
                raise SystemExit(f"{config.kind} has no search-time parameter {name!r}: adapt the benchmark")
            setattr(index, name, value)
        ids, used, best_s, runs, candidates = timed_search(index, data.queries, max_search_s)
        result = Result(
            data.n,
            data.d,
            config.kind,
            {**config.build, **setting},
            build_s,
            recall_at_k(ids, data.truth[:used]),
            candidates,
            used / best_s,
            used,
            runs,
        )
        log(
            f"    {config.kind} {result.label()}: recall {result.recall:.3f}, "
            f"{candidates:,.0f} candidates, {result.qps:,.0f} queries/s ({used} queries, {runs} runs)"
        )
        results.append(result)
    del index
    gc.collect()
    return results


def measure_exact(data: DataSet) -> Result:
    """Ground truth and the exact row: best of the timed runs of the exact index over all queries."""
    index, build_s = build_index(Config("exact", {}), data)
    index.search(data.queries[:WARM_UP_QUERIES], K)
    (scores, data.truth), times = timed_batches(lambda: index.search(data.queries, K))
    data.cosines = (
        f"exact neighbours' cosine: top 1 mean {scores[:, 0].mean():.2f}, top 10 mean {scores[:, -1].mean():.2f}"
    )
    q = len(data.queries)
    return Result(data.n, data.d, "exact", {}, build_s, 1.0, float(data.n), q / min(times), q, len(times))


def load() -> str:
    """The 1-minute load average: other work on the machine slows every measurement."""
    return f"{os.getloadavg()[0]:.1f}"


def run_data_set(
    n: int, d: int, args: argparse.Namespace, kinds: list[str], skipped: list[str]
) -> tuple[list[Result], float, str]:
    start = time.perf_counter()
    load_before = load()
    data = make_data(n, d, args.queries, args.seed)
    log(f"N = {n:,}, d = {d}: data made in {time.perf_counter() - start:.1f} s")
    exact = measure_exact(data)
    log(f"  exact: {exact.qps:,.1f} queries/s (ground truth)")
    results = [exact]
    for config in sweep_configs(n, d, kinds, args.quick, skipped)[1:]:
        results += measure(config, data, args.max_search_s)
    notes = f"{data.cosines}; load average {load_before} before, {load()} after"
    del data
    gc.collect()
    return results, time.perf_counter() - start, notes


# --- choosing, plotting ----------------------------------------------------------------------


def best_at_recall(results: list[Result], kind: str | None = None) -> Result | None:
    """The fastest approximate result with recall@10 >= the target (of one kind if given)."""
    good = [r for r in results if r.kind != "exact" and r.recall >= TARGET_RECALL and kind in (None, r.kind)]
    return max(good, key=lambda r: r.qps) if good else None


def good_setting(results: list[Result], kind: str) -> Result | None:
    """The setting for the size curve: the fastest at recall >= 0.9, else the best recall at least
    as fast as exact, else the best recall."""
    own = [r for r in results if r.kind == kind]
    if not own:
        return None
    best = best_at_recall(results, kind)
    if best:
        return best
    exact_qps = next(r.qps for r in results if r.kind == "exact")
    fast = [r for r in own if r.qps >= exact_qps] or own
    return max(fast, key=lambda r: (r.recall, r.qps))


def pareto(results: list[Result]) -> list[Result]:
    """The results not beaten in both recall and queries/s, by recall."""
    front: list[Result] = []
    for r in sorted(results, key=lambda r: (-r.recall, -r.qps)):
        if not front or r.qps > front[-1].qps:
            front.append(r)
    return front[::-1]


def plot_sweep(results: list[Result], n: int, d: int, n_queries: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    exact = next(r for r in results if r.kind == "exact")
    for kind in KINDS[1:]:
        own = [r for r in results if r.kind == kind]
        if not own:
            continue
        colour = COLOURS[kind]
        ax.scatter([r.recall for r in own], [r.qps for r in own], color=colour, alpha=0.3, s=18)
        front = pareto(own)
        ax.plot([r.recall for r in front], [r.qps for r in front], "o-", color=colour, label=f"{kind} (Pareto front)")
    ax.axhline(exact.qps, color="black", linestyle="--", linewidth=1)
    ax.plot([1.0], [exact.qps], "*", color="black", markersize=12, label=f"exact ({exact.qps:,.0f} queries/s)")
    ax.axvline(TARGET_RECALL, color="grey", linestyle=":", linewidth=1)
    ax.annotate(
        f"recall {TARGET_RECALL}",
        (TARGET_RECALL, 1),
        xycoords=("data", "axes fraction"),
        xytext=(-4, -14),
        textcoords="offset points",
        ha="right",
        fontsize=8,
        color="grey",
    )
    ax.set_yscale("log")
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("recall@10 (against exact cosine top 10)")
    ax.set_ylabel("queries/s (batch of queries, log scale)")
    ax.set_title(f"Recall@10 against queries/s: N = {n:,}, d = {d} ({n_queries:,} queries, clustered data)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left")
    path = out / f"index_sweep_{n}_{d}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_sizes(curve: dict[str, list[Result]], labels: dict[str, str], d: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for kind, points in curve.items():
        if not points:
            continue
        xs = [r.n for r in points]
        ys = [1000.0 / r.qps for r in points]
        name = "exact kNN (brute force)" if kind == "exact" else f"{kind} ({labels[kind]})"
        ax.plot(xs, ys, "o-", color=COLOURS[kind], label=name)
        if kind != "exact":
            offset = (5, 6) if kind == "lsh" else (5, -13)
            for r, y in zip(points, ys, strict=True):
                ax.annotate(
                    f"r={r.recall:.2f}",
                    (r.n, y),
                    textcoords="offset points",
                    xytext=offset,
                    fontsize=8,
                    color=COLOURS[kind],
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("database size N (vectors, log scale)")
    ax.set_ylabel("mean query time, ms (batched, log scale)")
    ax.set_title(f"LSH against kNN: query time against database size (d = {d}; r = recall@10)", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path = out / "lsh_vs_knn.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def size_curve(
    sizes: list[int],
    d: int,
    chosen: dict[str, Result],
    measured: list[Result],
    args: argparse.Namespace,
) -> tuple[dict[str, list[Result]], dict[str, str]]:
    """Exact and the chosen lsh and kmeans settings at every size (reusing sweep results)."""
    largest = max(r.n for r in chosen.values())
    k0_largest = max(1, round(math.sqrt(largest)))

    def config_at(kind: str, n: int) -> Config:
        if kind == "exact":
            return Config("exact", {})
        params = dict(chosen[kind].params)
        setting = {name: params.pop(name) for name in list(params) if name == SEARCH_PARAMS.get(kind)}
        if kind == "kmeans":
            multiple = params["n_clusters"] / k0_largest
            params["n_clusters"] = max(1, round(multiple * round(math.sqrt(n))))
            if "n_probe" in setting:
                setting["n_probe"] = min(setting["n_probe"], params["n_clusters"])
        return Config(kind, params, [setting])

    labels = {kind: "exact" if kind == "exact" else chosen[kind].label() for kind in chosen}
    if "kmeans" in chosen:
        multiple = chosen["kmeans"].params["n_clusters"] / k0_largest
        labels["kmeans"] = labels["kmeans"].replace(
            f"n_clusters={chosen['kmeans'].params['n_clusters']}",
            "n_clusters=sqrt(N)" if multiple == 1 else f"n_clusters={multiple:g} sqrt(N)",
        )
    curve: dict[str, list[Result]] = {kind: [] for kind in chosen}
    for n in sizes:
        wanted = {kind: config_at(kind, n) for kind in chosen}
        found: dict[str, Result] = {}
        for kind, config in wanted.items():
            params = {**config.build, **config.sweep[0]}
            for r in measured:
                if r.n == n and r.d == d and r.kind == kind and r.params == params:
                    found[kind] = r
        missing = [kind for kind in wanted if kind not in found]
        if missing:
            log(f"size curve, N = {n:,}: measuring {', '.join(missing)}")
            data = make_data(n, d, args.queries, args.seed)
            found["exact"] = found.get("exact") or measure_exact(data)
            if not len(data.truth):
                measure_exact(data)
            for kind in missing:
                if kind != "exact":
                    found[kind] = measure(wanted[kind], data, args.max_search_s)[0]
            del data
            gc.collect()
        for kind in chosen:
            curve[kind].append(found[kind])
    return curve, labels


# --- output ----------------------------------------------------------------------------------


def print_table(results: list[Result], seconds: float, notes: str) -> None:
    exact = next(r for r in results if r.kind == "exact")
    n, d = exact.n, exact.d
    print(f"\n### N = {n:,}, d = {d}\n\n{seconds:.0f} s; {notes}\n")
    print("| kind | parameters | build s | recall@10 | mean candidates | queries/s | speed-up vs exact | queries |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        runs = " (1 run)" if r.runs == 1 else ""
        print(
            f"| {r.kind} | {r.label()} | {r.build_s:.1f} | {r.recall:.3f} | {r.candidates:,.0f} | "
            f"{r.qps:,.0f} | {r.qps / exact.qps:.2f}x | {r.queries:,}{runs} |"
        )
    best = best_at_recall(results)
    if best:
        print(
            f"\nFastest at recall@10 >= {TARGET_RECALL}: {best.kind} ({best.label()}): recall {best.recall:.3f}, "
            f"{best.qps:,.0f} queries/s, {best.qps / exact.qps:.1f}x exact"
        )
    else:
        print(f"\nFastest at recall@10 >= {TARGET_RECALL}: none of the approximate indexes reaches it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="database sizes, comma-separated (default 100000,1000000)")
    parser.add_argument("--dims", help="dimensions, comma-separated (default 128,512)")
    parser.add_argument("--queries", type=int, help="queries per data set (default 1000)")
    parser.add_argument(
        "--curve-sizes", help="sizes of lsh_vs_knn.png, d = 128 if swept (default 1000,10000,100000,1000000)"
    )
    parser.add_argument("--kinds", default=",".join(KINDS[1:]), help="approximate kinds to sweep, comma-separated")
    parser.add_argument(
        "--max-search-s", type=float, default=8.0, help="measure a configuration on fewer queries above this (s)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder of the PNGs (default docs/img)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: by default sizes 2000,20000, d = 64,128, 200 queries, curve 1000,5000,20000; "
        "a short neural-lsh fit (1 epoch on 5,000 vectors)",
    )
    parser.add_argument(
        "--features",
        type=Path,
        help="measure on a features file (.npz with `features`, as `semret features extract --out` writes) "
        "instead of generated data: sizes and curve sizes default to 1000, 10000 and all its vectors, d to its own",
    )
    parser.add_argument("--query-features", type=Path, help="with --features: the queries' features file")
    args = parser.parse_args()
    if args.features is not None:
        global REAL
        REAL = load_real(args.features, args.query_features, args.queries or 1000, args.seed)
        everything = len(REAL.database)
        real_sizes = ",".join(str(n) for n in (1000, 10000) if n < everything) + f",{everything}"
        args.sizes = args.sizes or str(everything)
        args.dims = args.dims or str(REAL.database.shape[1])
        args.curve_sizes = args.curve_sizes or real_sizes
    defaults = (
        ("2000,20000", "64,128", 200, "1000,5000,20000")
        if args.quick
        else ("100000,1000000", "128,512", 1000, "1000,10000,100000,1000000")
    )
    for name, default in zip(("sizes", "dims", "queries", "curve_sizes"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]
    curve_sizes = [int(s) for s in args.curve_sizes.split(",") if s]
    wanted = [k for k in args.kinds.split(",") if k]
    kinds = [k for k in wanted if k in index_kinds()]
    skipped = [f"{k}: no such index kind (available: {', '.join(index_kinds())})" for k in wanted if k not in kinds]
    args.out.mkdir(parents=True, exist_ok=True)

    run_start = time.perf_counter()
    tables: list[tuple[list[Result], float, str]] = []
    for d in dims:
        for n in sizes:
            tables.append(run_data_set(n, d, args, kinds, skipped))
    all_results = [r for results, _, _ in tables for r in results]
    pngs = [plot_sweep(results, results[0].n, results[0].d, args.queries, args.out) for results, _, _ in tables]

    curve_d = 128 if 128 in dims and REAL is None else dims[0]
    at_largest = [r for r in all_results if r.d == curve_d and r.n == max(sizes)]
    chosen = {"exact": next(r for r in at_largest if r.kind == "exact")}
    for kind in ("lsh", "kmeans"):
        setting = good_setting(at_largest, kind) if kind in kinds else None
        if setting:
            chosen[kind] = setting
    curve, labels = size_curve(curve_sizes, curve_d, chosen, all_results, args)
    pngs.append(plot_sizes(curve, labels, curve_d, args.out))
    wall_s = time.perf_counter() - run_start

    import faiss
    import torch

    print(machine_line())
    data_line = (
        f"vectors from {REAL.source}" if REAL is not None
        else f"{N_CENTRES:,} Gaussian clusters on the unit sphere, spread sigma uniform in {list(SIGMA_RANGE)} "
        "(see the docstring)"
    )  # fmt: skip
    print(
        f"numpy {np.__version__}, faiss {faiss.__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads); {data_line}; {args.queries:,} queries per data set; k = {K}; queries/s: best of {REPEATS} to "
        f"{MAX_REPEATS} batches (repeated until they add up to {MIN_TOTAL_S:.0f} s; 1 run where a batch took > "
        f"{NO_REPEAT_S:.0f} s); seed {args.seed}; whole run {wall_s:.0f} s"
    )
    if skipped:
        print("Not measured: " + "; ".join(skipped))
    for results, seconds, notes in tables:
        print_table(results, seconds, notes)

    print(f"\n### Query time against database size (d = {curve_d}; lsh_vs_knn.png)\n")
    print("| N | kind | parameters | recall@10 | mean candidates | ms per query | queries |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for kind, points in curve.items():
        for r in points:
            print(
                f"| {r.n:,} | {kind} | {r.label()} | {r.recall:.3f} | {r.candidates:,.0f} | "
                f"{1000 / r.qps:.3f} | {r.queries:,} |"
            )
    print("\nPNGs: " + ", ".join(str(p) for p in pngs))

    target = [r for r in all_results if r.n == TARGET_N and r.d == TARGET_D]
    if target:
        exact = next(r for r in target if r.kind == "exact")
        best = best_at_recall(target)
        met = best is not None and best.qps >= TARGET_SPEED_UP * exact.qps
        detail = f"{best.kind} ({best.label()}), {best.qps / exact.qps:.1f}x" if best else "nothing reaches recall 0.9"
        print(
            f"\nTarget: at recall@10 >= {TARGET_RECALL}, an approximate index >= {TARGET_SPEED_UP:.0f}x exact at "
            f"N = {TARGET_N:,}, d = {TARGET_D}: " + ("yes" if met else "NO") + f" ({detail})"
        )
    else:
        print(f"\nTarget (N = {TARGET_N:,}, d = {TARGET_D}): not measured in this run")


if __name__ == "__main__":
    main()
