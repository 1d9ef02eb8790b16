"""Benchmark: load the full USF norms into SQLite and PostgreSQL; time and peak memory.

Each run happens in a fresh Python process on a fresh database, so its peak resident memory
(``ru_maxrss``) is the load's alone. It measures what ``semret norms load`` does: parse every file,
then load in one transaction; then a second load of the same files (skipped by checksum) and a
forced reload (parsed, staged and merged again, changing nothing). PostgreSQL is a throwaway
pgserver unless ``--postgres-url`` names one (its database is reset with ``db downgrade base``).
The server's own memory is not in the figure: it is the semret process's.

    uv run python benchmarks/ingest_norms.py ../shared/data/usf-norms --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from common import machine_line, start_postgres

TARGET_SECONDS = {"sqlite": 20.0, "postgresql": 10.0}


def one_run(norms_dir: Path, url: str) -> dict[str, float]:
    """Measure one load in this process (called in a child process)."""
    from semret.iwan.norms import find_norms_files, read_norms_file
    from semret.sql import migrations
    from semret.sql.engine import make_engine
    from semret.sql.norms_store import load_norms, norms_stats

    engine = make_engine(url)
    migrations.downgrade(engine, "base")
    migrations.upgrade(engine)
    start = time.perf_counter()
    files = [read_norms_file(path) for path in find_norms_files([norms_dir])]
    parsed = time.perf_counter()
    first = load_norms(engine, files)
    loaded = time.perf_counter()
    second = load_norms(engine, [read_norms_file(path) for path in find_norms_files([norms_dir])])
    reloaded = time.perf_counter()
    forced = load_norms(engine, files, force=True)
    forced_done = time.perf_counter()
    assert first.pairs_inserted == norms_stats(engine).pairs and not second.changed and not forced.changed
    return {
        "pairs": first.pairs_inserted,
        "parse_s": parsed - start,
        "load_s": loaded - parsed,
        "total_s": loaded - start,
        "reload_s": reloaded - loaded,
        "forced_reload_s": forced_done - reloaded,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_in_child(norms_dir: Path, url: str) -> dict[str, float]:
    """One measured run in a fresh interpreter; also returns its wall time, start-up included."""
    start = time.perf_counter()
    output = subprocess.run(
        [sys.executable, __file__, str(norms_dir), "--child", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def summarise(backend: str, runs: list[dict[str, float]]) -> str:
    """One markdown table row: medians over the runs, and the worst total."""

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    worst = max(r["total_s"] for r in runs)
    verdict = "yes" if worst < TARGET_SECONDS[backend] else "NO"
    return (
        f"| {backend} | {int(runs[0]['pairs']):,} | {median('parse_s'):.2f} | {median('load_s'):.2f} | "
        f"{median('total_s'):.2f} | {worst:.2f} | < {TARGET_SECONDS[backend]:.0f} s: {verdict} | "
        f"{median('reload_s'):.2f} | {median('forced_reload_s'):.2f} | {median('process_s'):.2f} | "
        f"{max(r['peak_rss_mib'] for r in runs):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("norms_dir", type=Path, help="directory of the eight Cue_Target_Pairs.* files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend (default 3)")
    parser.add_argument("--postgres-url", help="PostgreSQL to use instead of a throwaway pgserver")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default both)")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.norms_dir, args.child)))
        return

    rows = []
    with ExitStack() as stack:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="semret-bench-"))
                url = f"sqlite:///{folder}/semret.sqlite3"
            else:
                url = args.postgres_url or start_postgres(stack)
            runs = []
            for number in range(1, args.repeat + 1):
                runs.append(run_in_child(args.norms_dir, url))
                print(f"{backend} run {number}: total {runs[-1]['total_s']:.2f} s", file=sys.stderr)
            rows.append(summarise(backend, runs))

    print(machine_line())
    print(f"Runs per backend: {args.repeat} (medians; 'worst' is the slowest total)\n")
    print(
        "| backend | pairs | parse s | load s | parse + load s | worst s | target met | "
        "reload (unchanged) s | forced reload s | process wall s | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
