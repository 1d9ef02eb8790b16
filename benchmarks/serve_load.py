"""Benchmark: concurrent query requests against `semret serve` over a store (the demo's, say).

The app (`semret.web.app.create_app`, read-only engine, as `semret serve` builds it) is served by
uvicorn on a free local port. The queries: ``--requests`` stored images of the first collection
(random, seeded), the methods taken in turn (every method the collection has), k = ``--k``, as
``GET /collections/NAME/query?image_id=..&method=..&k=..&format=json``.

1. Cold: one request per method, one after another (the first loads its model or graph).
2. In-process baseline: every query through the Python API (`StoreBrowser.query`), one after
   another: what the answers cost without HTTP.
3. Serial HTTP: every request, one after another.
4. Concurrent: one thread per request, all released together (a barrier); each request's latency,
   and the errors (a status other than 200, or any exception: must be 0). Every answer must
   equal the same query's serial answer.

p50 / p99 / max latency, throughput, and the ratios to the in-process baseline are printed.

    uv run semret --db sqlite:///demo.sqlite3 demo --out semret-demo
    uv run python benchmarks/serve_load.py --db sqlite:///demo.sqlite3 --report semret-demo
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import machine_line, run_threads

from semret.app.browse import Query as BrowseQuery
from semret.app.browse import StoreBrowser
from semret.sql.engine import make_engine
from semret.web.app import create_app
from semret.web.background import serve_in_background


@dataclass(frozen=True)
class Request:
    image_id: int
    method: str


@dataclass
class Outcome:
    seconds: float
    status: int
    ids: list[int] | None
    error: str | None = None


def fetch(site: str, collection: str, request: Request, k: int) -> Outcome:
    params = urllib.parse.urlencode({"image_id": request.image_id, "method": request.method, "k": k, "format": "json"})
    url = f"{site}/collections/{urllib.parse.quote(collection)}/query?{params}"
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            document = json.loads(response.read())
            status = response.status
        (answer,) = document["answers"]
        ids = [row["image_id"] for row in answer["results"]]
    except urllib.error.HTTPError as exc:
        return Outcome(time.perf_counter() - start, exc.code, None, exc.read().decode(errors="replace")[:200])
    except Exception as exc:  # every failure, a malformed answer too, counts as an error of the run
        return Outcome(time.perf_counter() - start, 0, None, f"{type(exc).__name__}: {exc}")
    return Outcome(time.perf_counter() - start, status, ids)


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):8.1f} ms  p99 {np.percentile(ms, 99):8.1f} ms  max {ms.max():8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the store's URL (e.g. the demo's sqlite:///demo.sqlite3)")
    parser.add_argument("--report", type=Path, action="append", default=[], help="a report directory (repeatable)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load_before = os.getloadavg()
    began = time.perf_counter()
    browser = StoreBrowser(make_engine(args.db, read_only=True), args.report, [])
    collection = browser.collections()[0]["name"]
    methods = [method.key for method in browser.methods(collection)]
    stored = browser.pixels.collection(collection)
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(stored.image_ids, size=args.requests, replace=args.requests > len(stored.image_ids))
    requests = [Request(int(image_id), methods[i % len(methods)]) for i, image_id in enumerate(chosen)]
    print(machine_line())
    print(f"store {args.db}; collection {collection} ({len(stored.image_ids):,} images); k = {args.k}")
    print(f"methods: {', '.join(methods)}; {args.requests} requests, seed {args.seed}")

    with serve_in_background(create_app(browser)) as site:
        print("\ncold (first request of each method):")
        for method in methods:
            outcome = fetch(site, collection, Request(int(stored.image_ids[0]), method), args.k)
            print(f"  {method:<60} {outcome.seconds * 1000:8.1f} ms  status {outcome.status}")

        in_process = []
        for request in requests:
            start = time.perf_counter()
            browser.query(collection, [request.method], BrowseQuery(image_id=request.image_id), args.k)
            in_process.append(time.perf_counter() - start)

        serial = [fetch(site, collection, request, args.k) for request in requests]
        serial_wall = sum(outcome.seconds for outcome in serial)

        barrier = threading.Barrier(len(requests))
        concurrent: list[Outcome | None] = [None] * len(requests)

        def run(slot: int) -> None:
            barrier.wait()
            concurrent[slot] = fetch(site, collection, requests[slot], args.k)

        concurrent_wall = run_threads(run, len(requests))

    # a thread that died without an answer counts as an error (its latency: the whole run)
    done = [outcome or Outcome(concurrent_wall, 0, None, "no answer") for outcome in concurrent]
    errors = [o for o in done if o.status != 200]
    differ = sum(1 for a, b in zip(done, serial, strict=True) if a.ids != b.ids)
    serial_errors = sum(1 for outcome in serial if outcome.status != 200)
    lines = (
        ("in-process API, serial", in_process, sum(in_process), None),
        ("HTTP, serial", [o.seconds for o in serial], serial_wall, serial_errors),
        (f"HTTP, {len(requests)} concurrent", [o.seconds for o in done], concurrent_wall, len(errors)),
    )
    print()
    for title, seconds, wall, failed in lines:
        tail = "" if failed is None else f"  errors {failed}"
        print(f"{title:<28} {percentiles(seconds)}  {len(requests) / wall:7.1f} q/s{tail}")
    for outcome in errors[:5]:
        print(f"  error: {outcome.status} {outcome.error}")
    print("\np50 per method (ms): in-process / HTTP serial / HTTP concurrent")
    for method in methods:
        mine = [i for i, request in enumerate(requests) if request.method == method]
        cells = [np.percentile([seconds[i] for i in mine], 50) * 1000 for _, seconds, _, _ in lines]
        print(f"  {method:<60} {' / '.join(f'{cell:.1f}' for cell in cells)}")
    print(f"\nanswers that differ from the serial ones: {differ} of {len(done)}")
    base = float(np.percentile(in_process, 50))
    ratios = [float(np.percentile(seconds, 50)) / base for _, seconds, _, _ in lines[1:]]
    print(f"p50 ratio to the in-process API: serial HTTP {ratios[0]:.2f}, concurrent {ratios[1]:.2f}")
    before, after = (" ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg()))
    print(f"load average before {before}, after {after}; whole run {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
