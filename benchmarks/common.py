"""What the benchmarks share: a throwaway PostgreSQL and the line that names the machine."""

from __future__ import annotations

import os
import platform
import tempfile
from contextlib import ExitStack


def start_postgres(stack: ExitStack) -> str:
    """A throwaway PostgreSQL (pgserver) for the run; stopped when ``stack`` closes."""
    import pgserver

    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="semret-bench-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="stop")
    stack.callback(server.cleanup)
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def machine_line() -> str:
    """The machine a run was made on, for the results."""
    return f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
