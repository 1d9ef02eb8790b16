"""Which database semret talks to, and how it connects.

Resolution order: an explicit URL (the CLI's ``--db``), then ``SEMRET_DATABASE_URL``, then the
embedded default, a SQLite file in the user's data directory (platformdirs) created on first use.
PostgreSQL goes through psycopg 3: ``postgresql://`` URLs are rewritten to ``postgresql+psycopg://``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from semret.errors import DatabaseUnavailableError, SemretError

DATABASE_URL_ENV = "SEMRET_DATABASE_URL"
DEFAULT_DATABASE_FILE = "semret.sqlite3"
CONNECT_TIMEOUT_SECONDS = 10


def default_database_path() -> Path:
    """The embedded default database file: ``<user data dir>/semret/semret.sqlite3``."""
    return Path(platformdirs.user_data_dir("semret", appauthor=False)) / DEFAULT_DATABASE_FILE


def default_database_url() -> str:
    """SQLAlchemy URL of the embedded default database."""
    return f"sqlite+pysqlite:///{default_database_path()}"


def normalise_database_url(url: str | URL) -> URL:
    """Parse ``url`` and pin PostgreSQL to the psycopg 3 driver and SQLite to pysqlite."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SemretError(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    raise SemretError(
        f"unsupported database {parsed.drivername!r} in {describe_url(parsed)}: "
        "semret works with PostgreSQL (postgresql://...) and SQLite (sqlite:///path)"
    )


def resolve_database_url(explicit: str | URL | None = None) -> URL:
    """The URL to use: ``explicit``, else ``$SEMRET_DATABASE_URL``, else the embedded default."""
    chosen = explicit or os.environ.get(DATABASE_URL_ENV) or default_database_url()
    return normalise_database_url(chosen)


def describe_url(url: URL | str) -> str:
    """The URL as it may be shown to a user: the password hidden."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | URL | None = None) -> Engine:
    """An engine for ``url`` (resolved as in `resolve_database_url`).

    A SQLite file's folder is created on first use; SQLite enforces foreign keys. PostgreSQL
    connections time out after 10 s so that a server that is down gives an error, not a hang.
    """
    parsed = resolve_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction (committed on success, rolled back on error).

    A database that cannot be reached is reported as `DatabaseUnavailableError` naming it.
    """
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise database_unavailable(engine, exc) from exc
    with conn, conn.begin():
        yield conn


def database_unavailable(engine: Engine, exc: BaseException) -> DatabaseUnavailableError:
    """The error for a database that cannot be reached, with the driver's reason on one line."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()
    detail = reason[0] if reason else type(exc).__name__
    return DatabaseUnavailableError(f"cannot connect to the database {describe_url(engine.url)}: {detail}")
