"""Benchmark: semret's vector indexes against the raw faiss (and hnswlib) indexes they stand on.

Side by side in one run, on the clustered synthetic data of `index_sweep.py` (seeded, unit
float32; queries drawn from the same distribution), k = 10, batched queries:

- exact, N = 1M x 128: semret ``exact`` vs ``faiss.IndexFlatIP`` on the same vectors, and the
  previous numpy path (`semret.core.cosine.CosineIndex`, kept for the hash re-ranker) as "before";
- k-means IVF, 1M, nlist 1000, n_probe in {1, 2, 4, 8}: semret ``kmeans`` vs faiss'
  ``IndexIVFFlat`` with the same parameters trained by faiss itself, and vs the very faiss index
  semret built ("raw, same lists": the wrapper's own cost);
- HNSW, 1M, M = 32, efConstruction 40, efSearch in {16, 32, 64, 128}: semret ``hnsw`` vs searching
  its own faiss graph raw, and hnswlib (same M / ef, its own build) as the other library a user
  would pick;
- LSH, 100k x 128: semret ``lsh-codes`` (256 bits, k_factor in {5, 10, 20, 40}) vs
  ``faiss.IndexRefineFlat(faiss.IndexLSH(d, 256))`` with the same k_factor, and semret's bucket
  ``lsh`` (the seeds' scheme) at settings of the issue's sweep;
- build peak memory, 1M x 128: semret ``kmeans`` (fit + add) vs faiss ``IndexIVFFlat`` (train +
  add), each in a fresh process that first loads the same vectors from a .npy file: peak RSS
  (``VmHWM`` of /proc/self/status) of the whole process and above the loaded data.

Timing: ``time.perf_counter`` around one batched search; per configuration the engines alternate
(semret, peer, semret, peer...) ``--repeat`` times and the median is kept, so that a load change on
the shared machine hits both. Ratio = semret q/s / peer q/s (> 1: semret faster). recall@10 is
against the exact top 10 (semret exact, equal to faiss' flat search up to ties).

    uv run python benchmarks/faiss_indexes.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from common import machine_line
from index_sweep import make_data

from semret.core.cosine import CosineIndex
from semret.indexes import make_index

K = 10
Row = dict[str, Any]


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def alternate(
    searches: dict[str, Callable[[], npt.NDArray[np.int64]]], repeat: int
) -> dict[str, tuple[float, npt.NDArray[np.int64]]]:
    """Median seconds and the ids of each search, run in turns."""
    times: dict[str, list[float]] = {name: [] for name in searches}
    found: dict[str, npt.NDArray[np.int64]] = {}
    for _ in range(repeat):
        for name, search in searches.items():
            start = time.perf_counter()
            found[name] = search()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), found[name]) for name in searches}


def rows_for(
    work: str,
    setting: str,
    timed: dict[str, tuple[float, npt.NDArray[np.int64]]],
    n_queries: int,
    truth: npt.NDArray[np.int64],
    semret_name: str = "semret",
) -> list[Row]:
    ours = n_queries / timed[semret_name][0]
    rows = []
    for name, (seconds, found) in timed.items():
        qps = n_queries / seconds
        rows.append(
            {
                "work": work,
                "setting": setting,
                "engine": name,
                "q/s": qps,
                "recall@10": recall(found, truth),
                "semret / this": ours / qps,
            }
        )
    return rows


def exact_part(db: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], repeat: int) -> tuple[list[Row], Any]:
    ids = np.arange(len(db))
    ours = make_index("exact", db.shape[1])
    ours.add(ids, db)
    flat = faiss.IndexFlatIP(db.shape[1])
    flat.add(db)
    before = CosineIndex(db.shape[1])
    before.add(ids, db)
    truth = ours.search(queries, K)[1]
    faiss_ids = flat.search(queries, K)[1]
    same = float(np.mean(np.all(np.sort(faiss_ids, axis=1) == np.sort(truth, axis=1), axis=1)))
    log(f"exact: faiss' ids equal to semret's (as sets) for {same:.4f} of the queries")
    timed = alternate(
        {
            "semret": lambda: ours.search(queries, K)[1],
            "faiss IndexFlatIP": lambda: flat.search(queries, K)[1],
            "before (numpy CosineIndex)": lambda: before.search(queries, K)[1],
        },
        repeat,
    )
    return rows_for("exact", f"N={len(db):,}", timed, len(queries), truth), truth


def ivf_part(
    db: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    truth: Any,
    nlist: int,
    probes: list[int],
    repeat: int,
) -> list[Row]:
    d = db.shape[1]
    start = time.perf_counter()
    ours = make_index("kmeans", d, n_clusters=nlist, seed=0)
    ours.fit(db)
    ours.add(np.arange(len(db)), db)
    ours_build = time.perf_counter() - start
    start = time.perf_counter()
    raw = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    raw.cp.seed = 0
    raw.cp.niter = 20  # semret's k-means iterations (faiss' IVF default is 10)
    raw.train(db)
    raw.add(db)
    raw_build = time.perf_counter() - start
    log(f"ivf: built semret in {ours_build:.1f} s, faiss in {raw_build:.1f} s")
    same_lists: Any = ours.store.index  # type: ignore[attr-defined]
    rows: list[Row] = []
    for n_probe in probes:
        ours.n_probe = n_probe  # type: ignore[attr-defined]
        raw.nprobe = n_probe
        same_lists.nprobe = n_probe
        timed = alternate(
            {
                "semret": lambda: ours.search(queries, K)[1],
                "faiss IndexIVFFlat": lambda: raw.search(queries, K)[1],
                "raw, same lists": lambda: same_lists.search(queries, K)[1],
            },
            repeat,
        )
        rows += rows_for("k-means IVF", f"nlist={nlist}, n_probe={n_probe}", timed, len(queries), truth)
    return rows


def hnsw_part(
    db: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    truth: Any,
    m: int,
    efs: list[int],
    repeat: int,
    with_hnswlib: bool,
) -> list[Row]:
    d = db.shape[1]
    start = time.perf_counter()
    ours = make_index("hnsw", d, m=m, ef_construction=40)
    ours.add(np.arange(len(db)), db)
    log(f"hnsw: semret (faiss) graph built in {time.perf_counter() - start:.1f} s")
    graph: Any = ours._graph  # type: ignore[attr-defined]
    other = None
    if with_hnswlib:
        import hnswlib

        start = time.perf_counter()
        other = hnswlib.Index(space="ip", dim=d)
        other.init_index(max_elements=len(db), M=m, ef_construction=40, random_seed=0)
        other.add_items(db, np.arange(len(db)))
        other.set_num_threads(os.cpu_count() or 1)
        log(f"hnsw: hnswlib graph built in {time.perf_counter() - start:.1f} s")
    rows: list[Row] = []
    for ef in efs:
        ours.ef_search = ef  # type: ignore[attr-defined]
        graph.hnsw.efSearch = ef
        searches: dict[str, Callable[[], npt.NDArray[np.int64]]] = {
            "semret": lambda: ours.search(queries, K)[1],
            "raw, same graph": lambda: graph.search(queries, K)[1],
        }
        if other is not None:
            other.set_ef(ef)
            searches["hnswlib"] = lambda: other.knn_query(queries, K)[0].astype(np.int64)
        rows += rows_for("HNSW", f"M={m}, ef_search={ef}", alternate(searches, repeat), len(queries), truth)
    return rows


def lsh_part(
    db: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], factors: list[int], repeat: int
) -> list[Row]:
    d = db.shape[1]
    exact = make_index("exact", d)
    exact.add(np.arange(len(db)), db)
    truth = exact.search(queries, K)[1]
    rows: list[Row] = []
    ours = make_index("lsh-codes", d, n_bits=256, seed=0)
    ours.add(np.arange(len(db)), db)
    lsh = faiss.IndexLSH(d, 256)
    lsh.train(db)
    raw = faiss.IndexRefineFlat(lsh)
    raw.add(db)
    for factor in factors:
        ours.k_factor = factor  # type: ignore[attr-defined]
        raw.k_factor = factor
        timed = alternate(
            {
                "semret": lambda: ours.search(queries, K)[1],
                "faiss IndexLSH + IndexRefineFlat": lambda: raw.search(queries, K)[1],
            },
            repeat,
        )
        rows += rows_for("LSH codes", f"N={len(db):,}, 256 bits, k_factor={factor}", timed, len(queries), truth)
    for params in ({"n_bits": 12, "n_tables": 16, "n_probes": 2}, {"n_bits": 16, "n_tables": 16, "n_probes": 2}):
        buckets = make_index("lsh", d, seed=0, **params)
        buckets.add(np.arange(len(db)), db)
        few = queries[: max(50, len(queries) // 10)]
        timed = alternate({"semret lsh (buckets)": lambda b=buckets, q=few: b.search(q, K)[1]}, repeat)
        seconds, found = timed["semret lsh (buckets)"]
        setting = ", ".join(f"{k}={v}" for k, v in params.items())
        candidates = float(buckets.last_candidates.mean()) / len(db)
        rows.append(
            {
                "work": "LSH buckets",
                "setting": f"{setting} (scores {candidates:.1%} of the set)",
                "engine": "semret lsh (buckets)",
                "q/s": len(few) / seconds,
                "recall@10": recall(found, truth[: len(few)]),
                "semret / this": 1.0,
            }
        )
    return rows


MEMORY_CHILD = """
import json, sys, time
import numpy as np
import faiss
def high_water_kib():  # this process's peak resident set (VmHWM: not inherited across fork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
kind, path, nlist = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "semret":
    from semret.indexes import make_index
db = np.load(path)
base = high_water_kib()
start = time.perf_counter()
if kind == "semret":
    index = make_index("kmeans", db.shape[1], n_clusters=nlist, seed=0)
    index.fit(db)
    index.add(np.arange(len(db)), db)
else:
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(db.shape[1]), db.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 20
    index.train(db)
    index.add(db)
seconds = time.perf_counter() - start
peak = high_water_kib()
print(json.dumps({"base_mib": base / 1024, "peak_mib": peak / 1024, "seconds": seconds}))
"""


def memory_part(db: npt.NDArray[np.float32], nlist: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "db.npy"
        np.save(path, db)
        results = {}
        for kind in ("semret", "faiss"):
            out = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, kind, str(path), str(nlist)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
            log(f"memory {kind}: {results[kind]}")
    for kind, result in results.items():
        rows.append(
            {
                "work": "k-means build memory",
                "setting": f"N={len(db):,}, nlist={nlist}",
                "engine": "semret kmeans" if kind == "semret" else "faiss IndexIVFFlat",
                "peak RSS MiB": result["peak_mib"],
                "above the data MiB": result["peak_mib"] - result["base_mib"],
                "build s": result["seconds"],
                "semret / this (peak)": results["semret"]["peak_mib"] / result["peak_mib"],
            }
        )
    return rows


def print_rows(rows: list[Row]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if c in ("work", "setting", "engine") else "---:" for c in columns) + "|")
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                cells.append(f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}")
            else:
                cells.append(str(value))
        print("| " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="database size of exact, IVF, HNSW, memory")
    parser.add_argument("--lsh-n", type=int, default=100_000, help="database size of the LSH part")
    parser.add_argument("--hnsw-n", type=int, default=None, help="database size of the HNSW part (default: --n)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--exact-queries", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="exact,ivf,hnsw,lsh,memory")
    parser.add_argument("--no-hnswlib", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    print(machine_line())
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads; {load()} at the start")
    print()
    data = make_data(args.n, args.d, args.queries, seed=0)
    rows: list[Row] = []
    truth = None
    if parts & {"exact", "ivf", "hnsw"}:
        log("exact")
        exact_rows, _ = exact_part(data.vectors, data.queries[: args.exact_queries], args.repeat)
        rows += exact_rows if "exact" in parts else []
        truth_index = make_index("exact", args.d)
        truth_index.add(np.arange(args.n), data.vectors)
        truth = truth_index.search(data.queries, K)[1]
        del truth_index
    if "ivf" in parts:
        log("ivf")
        rows += ivf_part(data.vectors, data.queries, truth, 1000, [1, 2, 4, 8], args.repeat)
    if "hnsw" in parts:
        log("hnsw")
        if args.hnsw_n is None or args.hnsw_n == args.n:
            rows += hnsw_part(
                data.vectors, data.queries, truth, 32, [16, 32, 64, 128], args.repeat, not args.no_hnswlib
            )
        else:
            part = make_data(args.hnsw_n, args.d, args.queries, seed=0)
            part_truth = make_index("exact", args.d)
            part_truth.add(np.arange(args.hnsw_n), part.vectors)
            rows += hnsw_part(
                part.vectors,
                part.queries,
                part_truth.search(part.queries, K)[1],
                32,
                [16, 32, 64, 128],
                args.repeat,
                not args.no_hnswlib,
            )
    if "lsh" in parts:
        log("lsh")
        small = make_data(args.lsh_n, args.d, args.queries, seed=0)
        rows += lsh_part(small.vectors, small.queries, [5, 10, 20, 40], args.repeat)
    print_rows(rows)
    if "memory" in parts:
        log("memory")
        print_rows(memory_part(data.vectors, 1000))
    print(f"{load()} at the end; whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
